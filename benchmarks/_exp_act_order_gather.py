"""Session 22: act-order's activations gathered by one kernel (`gather_columns`) before the kernels, against the word GEMV
reading x through the permutation in place (one token) and `index_select` (past the word GEMV). The seven 7B linears,
int4 g128 with zero points in group order and a random permutation, µs as one CUDA graph of cold weights
(`bench.dispatch`), errors against float64 of x[:, perm] @ the dequantized weight. Then NF4 b64 through the swapped
kernel with the scales folded (FOLD) at 65-128 tokens (its 128-token tile), against unfolded and dequantize + cuBLAS.

    python benchmarks/_exp_act_order_gather.py out.json
"""
import json
import sys

import torch
import torch.nn.functional as F

from lowbit.bench.dispatch import KINDS, LAYER, bench_cold_us, cold_copies, storage
from lowbit.ops import weight_only as wo

gen = torch.Generator(device="cuda").manual_seed(0)
rows = []
bits, group, zero, dtype, _ = KINDS["int4"]
stores = {(k, n): [storage(k, n, bits, group, zero, dtype, gen) for _ in range(cold_copies(n * k * bits // 8))] for k, n in LAYER}
perms = {k: torch.randperm(k, device="cuda", generator=gen).to(torch.int32) for k in {k for k, _ in LAYER}}
for m in (1, 2, 16, 32, 64, 256):
    row = {"m": m, "now": 0.0, "plain": 0.0, "index_select": 0.0, "gather": 0.0, "gather + plain": 0.0}
    err = 0.0
    for (k, n), count in LAYER.items():
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        perm = perms[k]
        q, s, z = stores[(k, n)][0]
        ref = x.double()[:, perm.long()] @ wo.dequantize_reference(q, s, z, bits, group, k, None, torch.float64).t()
        paths = {
            "now": lambda st: wo._weight_only_matmul(x, st[0], st[1], st[2], None, bits, group, None, None, perm),
            "plain": lambda st: wo._weight_only_matmul(x, st[0], st[1], st[2], None, bits, group, None, None, None),
            "index_select": lambda st: x.index_select(1, perm),
            "gather": lambda st: wo.gather_columns(x, perm),
            "gather + plain": lambda st: wo._weight_only_matmul(wo.gather_columns(x, perm), st[0], st[1], st[2], None, bits, group, None, None, None),
        }
        for name, call in paths.items():
            row[name] += count * bench_cold_us([lambda st=st, call=call: call(st) for st in stores[(k, n)]])
        out = paths["gather + plain"]((q, s, z))
        err = max(err, ((out.double() - ref).norm() / ref.norm()).item())
        assert torch.equal(wo.gather_columns(x, perm), x[:, perm.long()])
    row = {a: round(b, 1) if isinstance(b, float) else b for a, b in row.items()}
    row["gather + plain error"] = f"{err:.1e}"
    print(json.dumps(row), flush=True)
    rows.append(row)

bits, group, zero, dtype, lut_name = KINDS["table4"]
lut = wo.code_table(lut_name, torch.device("cuda"))
stores = {(k, n): [storage(k, n, bits, group, zero, dtype, gen) for _ in range(cold_copies(n * k * bits // 8))] for k, n in LAYER}
for m in (65, 96, 128):
    row = {"kind": "table4", "m": m, "unfolded": 0.0, "folded": 0.0, "dequantize + cuBLAS": 0.0}
    for (k, n), count in LAYER.items():
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        paths = {
            "unfolded": lambda st: wo.mma_swapped_triton(x, st[0], st[1], st[2], bits, group, lut, config=dict(FOLD=False)),
            "folded": lambda st: wo.mma_swapped_triton(x, st[0], st[1], st[2], bits, group, lut, config=dict(FOLD=True)),
            "dequantize + cuBLAS": lambda st: F.linear(x, wo._dequantize(st[0], st[1], st[2], None, bits, group, k, lut, x.dtype)),
        }
        for name, call in paths.items():
            row[name] += count * bench_cold_us([lambda st=st, call=call: call(st) for st in stores[(k, n)]])
    row = {a: round(b, 1) if isinstance(b, float) else b for a, b in row.items()}
    print(json.dumps(row), flush=True)
    rows.append(row)
json.dump(rows, open(sys.argv[1], "w"), indent=1)
