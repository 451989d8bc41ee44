"""Prepared in session 22 (not yet run): W4A16 at 64-256 tokens, where every weight-only path is below bf16 (0.57-0.80x).
Session 22's count: a swapped-kernel program holds 64 weight rows and reads the whole of x for them, so at 64 tokens the
seven 7B linears read ~404 MB of x from the L2 (N / 64 times x each) against 101 MB of codes from memory, and at 128
tokens twice that. If the L2 is what holds the kernel back, tiles of more weight rows should win: the swapped kernel with
128 or 256 rows (8 warps; session 21's sweep had them lose on 23 of 24 cells, with its K split), and the standard
orientation (`ops.w4a16`: tokens on the MMA's long side, 128-256 weight columns a tile, the dequantized codes through
shared memory), against dequantize + cuBLAS. int4 g128 with zero points, µs as one CUDA graph of cold weights,
errors against float64.

    python benchmarks/_exp_tall_tiles.py out.json
"""
import json
import sys

import torch
import torch.nn.functional as F

from _layer_paths import add_errors, add_times, rounded
from lowbit.bench.dispatch import KINDS, LAYER, cold_copies, storage
from lowbit.ops import weight_only as wo
from lowbit.ops.tiles import cdiv, next_power_of_2
from lowbit.ops.w4a16 import w4a16_matmul_triton


def split_for(tiles: int, k: int, bk: int) -> int:
    """A K split that gives ~2 programs an SM (132 SMs)."""
    return max(1, min(8, next_power_of_2(cdiv(264, tiles)), k // bk))


gen = torch.Generator(device="cuda").manual_seed(0)
bits, group, zero, dtype, _ = KINDS["int4"]
stores = {(k, n): [storage(k, n, bits, group, zero, dtype, gen) for _ in range(cold_copies(n * k * bits // 8))] for k, n in LAYER}
rows = []
for m in (64, 128, 256):
    row, err = {"m": m}, {}
    for (k, n), count in LAYER.items():
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        q, s, z = stores[(k, n)][0]
        ref = x.double() @ wo.dequantize_reference(q, s, z, bits, group, k, None, torch.float64).t()
        base = wo.swapped_config(m, n, k, bits, group)
        paths = {
            "swapped": lambda st: wo.mma_swapped_triton(x, *st, bits, group),
            "dequantize + cuBLAS": lambda st: F.linear(x, wo._dequantize(st[0], st[1], st[2], None, bits, group, k, None, x.dtype)),
            "standard (heuristic)": lambda st: w4a16_matmul_triton(x, st[0], st[1], st[2], None, group),
            # packed codes with x loaded in their order 4 bytes at a time (session 9 had it lose at 64 tokens, on older tiles)
            "swapped packed, x permuted in the load": lambda st: wo.mma_swapped_triton(x, *st, bits, group, config=dict(PACKED=True)),
        }
        for rows_a_tile in (128, 256) if m <= 64 else (128,):  # (256 rows on a 128-token tile spill: sm_90 SASS, on the CPU)
            tiles = cdiv(n, rows_a_tile) * cdiv(m, base["BLOCK_M"])
            cfg = dict(BLOCK_N=rows_a_tile, num_warps=8, SPLIT_K=split_for(tiles, k, base["BLOCK_K"]))
            paths[f"swapped {rows_a_tile} rows, 8 warps"] = lambda st, cfg=cfg: wo.mma_swapped_triton(x, *st, bits, group, config=cfg)
        # tiles that compile for sm_90 without spills (checked on the CPU; 64 × 256 spills with 4 or 8 warps)
        tiles_std = [(64, 128, 128, 4), (64, 128, 64, 4), (64, 128, 128, 8)] if m <= 64 else [(128, 256, 64, 8), (128, 128, 128, 8), (64, 128, 128, 4)]
        for bm, bn, bk, warps in tiles_std:
            split = split_for(cdiv(m, bm) * cdiv(n, bn), k, bk)
            cfg = dict(BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, num_warps=warps, num_stages=3, SPLIT_K=split)
            paths[f"standard {bm}x{bn}x{bk} w{warps}"] = lambda st, cfg=cfg: w4a16_matmul_triton(x, st[0], st[1], st[2], None, group, config=cfg)
        add_times(row, paths, stores[(k, n)], count)
        add_errors(err, paths, (q, s, z), ref)
    row = rounded(row, err)
    print(json.dumps(row), flush=True)
    rows.append(row)
json.dump(rows, open(sys.argv[1], "w"), indent=1)
