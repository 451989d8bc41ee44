"""Session 19 (prepared, not run): NF4's codes in the swapped kernel from registers (`_packed_table`, PRMT lookups)
against the shared-memory gather (`_lookup`) at 2-16 tokens on the 7B layer, weights read from memory, with bf16
cuBLAS beside them. sm_90 on the CPU: the main loop 254 → 203 instructions a 64-code step, its LDS 40 → 8 and STS
5 → 0. µs a layer (the seven linears), and each path's error against float64.

    python benchmarks/_exp_packed_tables.py out.json
"""
import json
import sys

import torch
import torch.nn.functional as F

from lowbit.bench.dispatch import LAYER, bench_cold_us, cold_copies, storage
from lowbit.ops import weight_only as wo

gen = torch.Generator(device="cuda").manual_seed(0)
lut = wo.code_table("nf4", torch.device("cuda"))
stores = {(k, n): [storage(k, n, 4, 64, False, None, gen) for _ in range(cold_copies(n * k // 2))] for k, n in LAYER}
floats = {(k, n): [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) for _ in range(cold_copies(2 * n * k))] for k, n in LAYER}
rows = []
for m in (2, 4, 8, 16):
    row = {"m": m}
    xs = {k: torch.randn(m, k, device="cuda", dtype=torch.bfloat16) for k, _ in LAYER}
    row["bf16"] = round(sum(c * bench_cold_us([lambda w=w, k=k: F.linear(xs[k], w) for w in floats[(k, n)]]) for (k, n), c in LAYER.items()), 1)
    for name, flag in (("gather", False), ("packed", True)):
        wo.PACKED_TABLES = flag
        total, err = 0.0, 0.0
        for (k, n), count in LAYER.items():
            x = xs[k]
            total += count * bench_cold_us([lambda q=q, s=s: wo.mma_swapped_triton(x, q, s, None, 4, 64, lut) for q, s, _ in stores[(k, n)]])
            q, s, _ = stores[(k, n)][0]
            ref = x.double() @ wo.dequantize_reference(q, s, None, 4, 64, k, lut, torch.float64).t()
            out = wo.mma_swapped_triton(x, q, s, None, 4, 64, lut)
            err = max(err, ((out.double() - ref).norm() / ref.norm()).item())
        row[name] = [round(total, 1), f"{err:.1e}"]
    wo.PACKED_TABLES = False
    print(json.dumps(row), flush=True)
    rows.append(row)
json.dump(rows, open(sys.argv[1], "w"), indent=1)
