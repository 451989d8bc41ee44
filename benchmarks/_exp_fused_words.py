"""Session 20 (prepared, not run): the word GEMV's tile on the fused projections' shapes, which no sweep has seen:
4096 → 12288 (q/k/v) and 4096 → 22016 (gate/up), with 4096 → 11008 beside them as the known case. int4 g128 with zero
points (bench generate's W4A16) and int8 one scale a row (W8A16), one token, weights read from memory (cold copies),
µs a call; bf16 cuBLAS on the same shape; each tile's error against float64 of the codes.

    python benchmarks/_exp_fused_words.py out.json
"""
import json
import sys

import torch
import torch.nn.functional as F

from lowbit.bench.dispatch import bench_cold_us, cold_copies, storage
from lowbit.ops import weight_only as wo

TILES = [dict(BLOCK_N=bn, BLOCK_W=bw, V=2, num_warps=w, PREFETCH=p)
         for bn, bw, w in ((8, 256, 4), (8, 512, 8), (16, 256, 8), (4, 256, 2), (8, 128, 2), (16, 128, 4))
         for p in (True, 2)]
gen = torch.Generator(device="cuda").manual_seed(0)
rows = []
for bits, group, zero in ((4, 128, True), (8, None, False)):
    for k, n in ((4096, 11008), (4096, 12288), (4096, 22016)):
        g = group or k
        stores = [storage(k, n, bits, g, zero, None, gen) for _ in range(cold_copies(n * k * bits // 8))]
        floats = [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) for _ in range(cold_copies(2 * n * k))]
        x = torch.randn(1, k, device="cuda", dtype=torch.bfloat16)
        q, s, z = stores[0]
        ref = x.double() @ wo.dequantize_reference(q, s, z, bits, g, k, None, torch.float64).t()
        row = {"bits": bits, "k": k, "n": n, "bf16": round(bench_cold_us([lambda w=w: F.linear(x, w) for w in floats]), 2),
               "default": {**wo.words_config(n, k, bits, g)}, "tiles": []}
        for cfg in [wo.words_config(n, k, bits, g)] + TILES:
            try:
                out = wo.gemv_words_triton(x, q, s, z, bits, g, config=cfg)
                err = ((out.double() - ref).norm() / ref.norm()).item()
                us = bench_cold_us([lambda st=st: wo.gemv_words_triton(x, st[0], st[1], st[2], bits, g, config=cfg) for st in stores])
                row["tiles"].append([cfg, round(us, 2), f"{err:.1e}"])
            except Exception as e:  # noqa: BLE001 - a tile the compiler refuses is a data point
                row["tiles"].append([cfg, f"{type(e).__name__}: {str(e)[:120]}"])
        row["tiles"].sort(key=lambda t: t[1] if isinstance(t[1], float) else 1e9)
        print(json.dumps({**row, "tiles": row["tiles"][:4]}), flush=True)
        rows.append(row)
json.dump(rows, open(sys.argv[1], "w"), indent=1)
