"""Session 23 (prepared): act-order's gather of x with whole rows a program. The gather takes one 1024-column tile a
program, whose 1024 random columns touch most of the row, so each tile pulls most of its row into the L1: about 4x the
row's bytes on K = 4096 and 8x on 11008, where the 90 MB x of 4096 tokens no longer fits the 60 MB L2 and index_select
wins (233.7 against 270.2 µs, session 22 call 5; at 4096 tokens act-order costs W4A16 0.94x → 0.83x bf16, ~370 µs on
the seven linears). A program that loops over its row's tiles reads the row once. µs a gather of bf16 x [M, K] by a
random permutation, as a CUDA graph (x in the L2 where it fits), each output checked bit for bit.

    python benchmarks/_exp_gather_rows.py out.json
"""
import json
import sys

import torch

from lowbit.bench.dispatch import bench_us
from lowbit.ops import weight_only as wo
from lowbit.ops.tiles import cdiv

gen = torch.Generator(device="cuda").manual_seed(0)
rows = []
for m in (16, 64, 256, 1024, 4096):
    for k in (4096, 11008):
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16, generator=gen)
        perm = torch.randperm(k, device="cuda", generator=gen).to(torch.int32)
        want = x[:, perm.long()]
        row = {"m": m, "k": k, "index_select": round(bench_us(lambda: x.index_select(1, perm)), 2)}
        for name, bk, per, warps in (("tile 1024", 1024, 1024, 4), ("4 tiles", 1024, 4096, 4), ("whole row", 1024, None, 4),
                                     ("whole row, 8 warps", 1024, None, 8), ("whole row of 2048-column tiles", 2048, None, 4)):
            per = per or cdiv(k, bk) * bk
            out = torch.empty_like(x)

            def run(bk=bk, per=per, warps=warps, out=out):
                wo._gather_columns_kernel[(m, cdiv(k, per))](x, perm, out, m, k, per, x.stride(0), out.stride(0), BLOCK_M=1,
                                                             BLOCK_K=bk, ORDER_K=0, num_warps=warps)
            run()
            assert torch.equal(out, want), name
            row[name] = round(bench_us(run), 2)
        print(json.dumps(row), flush=True)
        rows.append(row)
json.dump(rows, open(sys.argv[1], "w"), indent=1)
