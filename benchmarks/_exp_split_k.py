"""Split-K in the Gluon INT8 matmul (`ops.int8_hopper.split_k`): each shape at 1, 2, 4 and 8 parts of K (where K
allows), µs and TOP/s (do_bench, L2 flushed), the error against float64, and what `split_k` picks. Shapes: a
llama2-1b training step's weight gradients at 16 x 2048 tokens (1536 x 1536 x 32768 has 144 output tiles for 264
consumer warpgroups) and the W8A8 linears of `lowbit bench linear` at 256 and 1024 tokens.

    python3 benchmarks/_exp_split_k.py --out $OUT/split-k.json

A record: it ran on the kernel with split-K of commit 3b54829 (session 14, call 4), where every part count lost
(1536 x 1536 x 32768: 168 µs unsplit, 192-210 split) and split-K was then taken out of the library.
"""

from __future__ import annotations

import argparse
import json

import torch
import triton.testing

from lowbit.ops import int8_hopper
from sweep import int8_operands, write

TOKENS = 16 * 2048
SHAPES = [(1536, 1536, TOKENS), (6144, 1536, TOKENS), (1536, 6144, TOKENS)]
SHAPES += [(m, n, k) for m in (256, 1024) for n, k in ((4096, 4096), (11008, 4096), (4096, 11008))]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    args = p.parse_args()
    gen = torch.Generator(device="cuda").manual_seed(0)
    rows = []
    for m, n, k in SHAPES:
        a, bt, sa, sb = int8_operands(m, n, k, gen)
        ref = (a.double() @ bt.double().t()) * sa.double()[:, None] * sb.double()[None, :]
        row = dict(m=m, n=n, k=k, picked=int8_hopper.split_k(m, n, k, False, a.device))
        for split in (1, 2, 4, 8):
            if m % int8_hopper.BLOCK_M or k % (split * int8_hopper.BLOCK_K):
                continue
            fn = lambda: int8_hopper.scaled_mm_pingpong(a, bt, sa, sb, None, torch.bfloat16, split)  # noqa: E731
            err = ((fn().double() - ref).norm() / ref.norm()).item()
            ms = triton.testing.do_bench(fn, rep=100)
            row[f"split{split}"] = dict(us=round(ms * 1e3, 1), tops=round(2 * m * n * k / (ms * 1e-3) / 1e12, 1), err=float(f"{err:.3g}"))
        print(json.dumps(row), flush=True)
        rows.append(row)
        write(args.out, rows)


if __name__ == "__main__":
    main()
