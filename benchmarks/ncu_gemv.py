"""Launch the word GEMV on one Llama-2-7B shape at one token a few times per tile, or the swapped MMA kernel
at --m tokens (--swapped, its default tile), for `ncu --kernel-name regex:gemv|swapped` to profile (hardware
counters; the device README says how).

    PYTHONPATH=src ncu --clock-control none --kernel-name regex:gemv_words --launch-skip 2 --launch-count 1 \\
        --section SpeedOfLight --section WarpStateStats --section SchedulerStats \\
        python3 benchmarks/ncu_gemv.py --k 4096 --n 11008 --tiles 8x128x2x2x0 8x128x1x4x1

A tile: BLOCK_N x BLOCK_W x V x warps x PREFETCH. int4 codes, groups of 128 with zero points, as bench linear's W4A16.
"""

import argparse
import json

import torch

from lowbit.formats.packing import pack
from lowbit.ops import weight_only as wo

ap = argparse.ArgumentParser()
ap.add_argument("--k", type=int, default=4096)
ap.add_argument("--n", type=int, default=11008)
ap.add_argument("--tiles", nargs="+", default=["8x256x2x4x1"])
ap.add_argument("--swapped", action="store_true", help="the swapped MMA kernel instead, at --m tokens")
ap.add_argument("--m", type=int, default=16)
ap.add_argument("--swapped-config", type=json.loads, default=None, help='a tile for the swapped kernel, e.g. \'{"BLOCK_N": 128}\'')
args = ap.parse_args()
k, n = args.k, args.n
gen = torch.Generator(device="cuda").manual_seed(0)
q = pack(torch.randint(0, 16, (n, k), generator=gen, device="cuda", dtype=torch.uint8), 4)
s = torch.rand(n, k // 128, generator=gen, device="cuda") * 0.01
z = torch.randint(0, 16, s.shape, generator=gen, device="cuda", dtype=torch.uint8)
x = torch.randn(args.m if args.swapped else 1, k, device="cuda", dtype=torch.bfloat16)
for _ in range(3 if args.swapped else 0):
    wo.mma_swapped_triton(x, q, s, z, 4, 128, config=args.swapped_config)
for tile in [] if args.swapped else args.tiles:
    bn, bw, v, warps, prefetch = (int(t) for t in tile.split("x"))
    for _ in range(3):
        wo.gemv_words_triton(x, q, s, z, 4, 128, config=dict(BLOCK_N=bn, BLOCK_W=bw, V=v, num_warps=warps, PREFETCH=bool(prefetch)))
torch.cuda.synchronize()
