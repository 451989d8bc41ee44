"""Sweep the word GEMV's latency hiding on the Llama-2-7B shapes at one token: tile × V (consecutive words a
column) × PREFETCH (the next words loaded before this step's arithmetic) × SPLIT_K (more programs on a short K), for the
schemes `lowbit bench linear` runs through it, against bf16 cuBLAS; writes JSON, prints each best.

    PYTHONPATH=src python benchmarks/tune_words_split.py --out words-split.json [--budget-s 300]
        [--schemes int4-g128-zero] [--tiles 8x128x4 8x512x8] [--splits 1] [--vs 1 2]   (a shorter sweep: tiles BLOCK_NxBLOCK_Wxwarps)
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import torch
import torch.nn.functional as F

from lowbit.ops import weight_only as wo
from sweep import SHAPES  # benchmarks/, on the path when run as a script
from sweep import bench_cold_us, cold_copies, storage, write

# (name, bits, group or None for one scale a row, zero points, code dtype or None for packed uint8)
SCHEMES = [("int4-g128-zero", 4, 128, True, None), ("int4-g128", 4, 128, False, None),
           ("int8-channel", 8, None, False, None), ("e4m3-channel", 8, None, False, torch.float8_e4m3fn)]
TILES = list(itertools.product((4, 8, 16), (64, 128, 256), (1, 2, 4)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--budget-s", type=float, default=300)
    ap.add_argument("--schemes", nargs="+", default=[name for name, *_ in SCHEMES], choices=[name for name, *_ in SCHEMES])
    ap.add_argument("--tiles", nargs="+", default=None, help="BLOCK_NxBLOCK_Wxwarps (default: the whole grid)")
    ap.add_argument("--splits", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--vs", type=int, nargs="+", default=[1, 2, 4], help="consecutive words a column (V)")
    ap.add_argument("--prefetch", type=int, nargs="+", default=[0, 1], choices=[0, 1])
    args = ap.parse_args()
    tiles = [tuple(int(v) for v in t.split("x")) for t in args.tiles] if args.tiles else TILES
    t0 = time.time()
    gen = torch.Generator(device="cuda").manual_seed(0)
    rows = []
    for name, bits, group, zero, dtype in [sc for sc in SCHEMES if sc[0] in args.schemes]:
        for k, n in SHAPES:
            if time.time() - t0 > args.budget_s:
                break
            g = group or k
            stores = [storage(k, n, bits, g, zero, dtype, gen) for _ in range(cold_copies(n * k * bits // 8))]  # not the L2
            q, s, z = stores[0]
            x = torch.randn(1, k, device="cuda", dtype=torch.bfloat16)
            ref = x.double() @ wo.dequantize_reference(q, s, z, bits, g, k, None, torch.float64).t()
            ws = [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) for _ in range(cold_copies(2 * n * k))]
            base = bench_cold_us([lambda w=w: F.linear(x, w) for w in ws])
            default = wo.words_config(n, k, bits, g)  # what the dispatch runs now
            results = []
            for (bn, bw, warps), v, prefetch, split in itertools.product(tiles, args.vs, args.prefetch, args.splits):
                if not 16 <= bn * bw * (32 // bits) // (32 * warps) <= 128:  # codes a thread takes a step
                    continue
                cfg = dict(BLOCK_N=bn, BLOCK_W=bw, V=v, num_warps=warps, PREFETCH=bool(prefetch), SPLIT_K=split)
                try:
                    out = wo.gemv_words_triton(x, q, s, z, bits, g, config=cfg)
                    err = ((out.double() - ref).norm() / ref.norm()).item()
                    us = bench_cold_us([lambda q=q, s=s, z=z: wo.gemv_words_triton(x, q, s, z, bits, g, config=cfg) for q, s, z in stores])
                except Exception as e:  # noqa: BLE001 - a config the compiler refuses is a data point
                    rows.append(dict(scheme=name, k=k, n=n, cfg=cfg, error=str(e)[:300]))
                    continue
                rows.append(dict(scheme=name, k=k, n=n, cfg=cfg, us=us, bf16_us=base, speedup=base / us, rel_err=err))
                results.append((us, cfg))
            results.sort(key=lambda r: r[0])
            default_us = bench_cold_us([lambda q=q, s=s, z=z: wo.gemv_words_triton(x, q, s, z, bits, g, config=default) for q, s, z in stores])
            summary = dict(scheme=name, k=k, n=n, bf16_us=base, default=default, default_us=default_us, best=results[:4])
            rows.append(summary)
            print(json.dumps(summary), flush=True)
            write(args.out, rows)


if __name__ == "__main__":
    main()
