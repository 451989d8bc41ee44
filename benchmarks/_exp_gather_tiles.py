"""Session 22: act-order's x gather at large token counts. bench linear (call 4) had W4A16 act-order at 4096 tokens
slower with `gather_columns` (3.463 ms) than with `index_select` (3.133, call 2). µs a gather of x [M, K] bf16 by a
random permutation, as a CUDA graph (x in the L2 where it fits): `index_select`, and the gather kernel's tiles
(rows × columns a program, 4 warps).

    python benchmarks/_exp_gather_tiles.py out.json

(The kernel's signature has since gained the columns a program and ORDER_K; the call below passes one tile and 0.)
"""
import json
import sys

import torch

from lowbit.bench.dispatch import bench_us
from lowbit.ops import weight_only as wo
from lowbit.ops.tiles import cdiv

TILES = [(1, 1024), (4, 512), (8, 256), (16, 256), (32, 128), (8, 1024)]
gen = torch.Generator(device="cuda").manual_seed(0)
rows = []
for m in (1, 16, 64, 256, 1024, 4096):
    for k in (4096, 11008):
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16, generator=gen)
        perm = torch.randperm(k, device="cuda", generator=gen).to(torch.int32)
        want = x[:, perm.long()]
        row = {"m": m, "k": k, "index_select": round(bench_us(lambda: x.index_select(1, perm)), 2)}
        for bm, bk in TILES:
            out = torch.empty_like(x)

            def run(bm=bm, bk=bk, out=out):
                wo._gather_columns_kernel[(cdiv(m, bm), cdiv(k, bk))](x, perm, out, m, k, bk, x.stride(0), out.stride(0),
                                                                      BLOCK_M=bm, BLOCK_K=bk, ORDER_K=0, num_warps=4)
            run()
            assert torch.equal(out, want)
            row[f"{bm}x{bk}"] = round(bench_us(run), 2)
        print(json.dumps(row), flush=True)
        rows.append(row)
json.dump(rows, open(sys.argv[1], "w"), indent=1)
