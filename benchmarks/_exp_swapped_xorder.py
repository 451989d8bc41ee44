"""Session 22: the swapped kernel's packed 4-bit codes on tiles taller than 16 tokens, with x gathered into the codes'
K order before the launch (`XPERM`: one `gather_columns` kernel, then x loaded contiguously; sm_90 loop instructions
at 64 tokens on 4096→11008, int4 g128: 397 unpacked → 267, at 128 tokens 458 → 332). Session 9 had packed codes
lose on tall tiles because x was loaded in that order 4 bytes at a time. The seven 7B linears, int4 g128 with zero
points and NF4 b64, µs as one CUDA graph of cold weights (`bench.dispatch`): the heuristic's tile as it runs, the same
tile packed with x gathered (the gather included), the gather alone, and dequantize + cuBLAS; errors against float64.

    python benchmarks/_exp_swapped_xorder.py out.json
"""
import json
import sys

import torch
import torch.nn.functional as F

from lowbit.bench.dispatch import KINDS, LAYER, bench_cold_us, cold_copies, storage
from lowbit.ops import weight_only as wo

gen = torch.Generator(device="cuda").manual_seed(0)
rows = []
for kind in ("int4", "table4"):
    bits, group, zero, dtype, lut_name = KINDS[kind]
    lut = wo.code_table(lut_name, torch.device("cuda")) if lut_name else None
    stores = {(k, n): [storage(k, n, bits, group, zero, dtype, gen) for _ in range(cold_copies(n * k * bits // 8))] for k, n in LAYER}
    for m in (16, 32, 64, 128, 256):
        row = {"kind": kind, "m": m, "default": 0.0, "x ordered": 0.0, "gather": 0.0, "dequantize + cuBLAS": 0.0}
        err = {"default": 0.0, "x ordered": 0.0}
        for (k, n), count in LAYER.items():
            x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
            q, s, z = stores[(k, n)][0]
            ref = x.double() @ wo.dequantize_reference(q, s, z, bits, group, k, lut, torch.float64).t()
            block_k = wo.swapped_config(m, n, k, bits, group)["BLOCK_K"]
            order = wo.packed_x_order(k, block_k, x.device)
            paths = {
                "default": lambda st: wo.mma_swapped_triton(x, st[0], st[1], st[2], bits, group, lut),
                "x ordered": lambda st: wo.mma_swapped_triton(x, st[0], st[1], st[2], bits, group, lut, config=dict(PACKED=True, XPERM=True)),
                "gather": lambda st: wo.gather_columns(x, order),
                "dequantize + cuBLAS": lambda st: F.linear(x, wo._dequantize(st[0], st[1], st[2], None, bits, group, k, lut, x.dtype)),
            }
            for name, call in paths.items():
                row[name] += count * bench_cold_us([lambda st=st, call=call: call(st) for st in stores[(k, n)]])
            for name in err:
                err[name] = max(err[name], ((paths[name]((q, s, z)).double() - ref).norm() / ref.norm()).item())
        row = {a: round(b, 1) if isinstance(b, float) else b for a, b in row.items()}
        row["errors"] = {a: f"{b:.1e}" for a, b in err.items()}
        print(json.dumps(row), flush=True)
        rows.append(row)
json.dump(rows, open(sys.argv[1], "w"), indent=1)
