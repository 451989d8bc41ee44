"""Sweep the swapped-operand MMA kernel (`lowbit.ops.weight_only._mma_swapped_kernel`) on the Llama-2-7B
shapes at a few tokens, against bf16 cuBLAS and what `weight_only_matmul` dispatches (in session 6's run:
the word-plane MMA kernel up to 32 tokens, then dequantize + cuBLAS); writes JSON, prints each best.

    PYTHONPATH=src python benchmarks/tune_mma_swapped.py --out mma-swapped.json [--budget-s 300]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import torch
import torch.nn.functional as F

from lowbit.ops import weight_only as wo
from sweep import SHAPES, bench_cold_us, cold_copies, storage, write  # benchmarks/, on the path when run as a script

SCHEMES = [("int4-g128-zero", 4, 128, True), ("int8-channel", 8, None, False), ("int4-g128", 4, 128, False)]
TILES = list(itertools.product((64, 128), (64, 128), (1, 2, 4, 8), (3, 4)))  # BLOCK_N, BLOCK_K, SPLIT_K, stages


def tiles(m: int) -> list[dict]:
    """The configs tried at m tokens: the default BLOCK_M with TILES; from 128 tokens also taller tiles (each
    m-tile dequantizes the whole weight again: 4 times at 256 tokens with 64-row tiles), not split."""
    cfgs = [dict(BLOCK_N=bn, BLOCK_K=bk, SPLIT_K=split, num_stages=stages) for bn, bk, split, stages in TILES]
    if m >= 128:
        cfgs += [dict(BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=128, SPLIT_K=1, num_stages=stages, num_warps=warps)
                 for bm, bn, stages, warps in itertools.product((128, 256), (64, 128), (3, 4), (4, 8))]
    return cfgs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--budget-s", type=float, default=300)
    ap.add_argument("--ms", type=int, nargs="+", default=[4, 16, 64, 256])
    args = ap.parse_args()
    t0 = time.time()
    gen = torch.Generator(device="cuda").manual_seed(0)
    rows = []
    for name, bits, group, zero in SCHEMES:
        for (k, n), m in itertools.product(SHAPES, args.ms):
            if time.time() - t0 > args.budget_s:
                break
            g = group or k
            stores = [storage(k, n, bits, g, zero, None, gen) for _ in range(cold_copies(n * k * bits // 8))]  # not the L2
            q, s, z = stores[0]
            x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
            ref = x.double() @ wo.dequantize_reference(q, s, z, bits, g, k, None, torch.float64).t()
            ws = [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) for _ in range(cold_copies(2 * n * k))]
            row = dict(scheme=name, k=k, n=n, m=m, bf16_us=bench_cold_us([lambda w=w: F.linear(x, w) for w in ws]),
                       dispatch_us=bench_cold_us([lambda q=q, s=s, z=z: wo.weight_only_matmul(x, q, s, z, None, bits, g, None, None)
                                                  for q, s, z in stores]))
            results = []
            for cfg in tiles(m):
                try:
                    out = wo.mma_swapped_triton(x, q, s, z, bits, g, config=cfg)
                    err = ((out.double() - ref).norm() / ref.norm()).item()
                    us = bench_cold_us([lambda q=q, s=s, z=z: wo.mma_swapped_triton(x, q, s, z, bits, g, config=cfg) for q, s, z in stores])
                except Exception as e:  # noqa: BLE001 - a config the compiler refuses is a data point
                    rows.append(dict(scheme=name, k=k, n=n, m=m, cfg=cfg, error=str(e)[:300]))
                    continue
                results.append((us, cfg, err))
            results.sort(key=lambda r: r[0])
            row["best"] = results[:4]
            rows.append(row)
            print(json.dumps(row), flush=True)
            write(args.out, rows)


if __name__ == "__main__":
    main()
