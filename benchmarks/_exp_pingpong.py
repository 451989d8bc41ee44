"""The warp-specialized Gluon INT8 matmul (`ops.int8_hopper`) against the persistent Triton TMA kernel on the six
matmul shapes of a llama2-1b training step at 16 x 2048 tokens and on squares: TOP/s (do_bench, L2 flushed), each
output checked equal to the bit, and the ms a step the six shapes would take (24 layers, the calls a layer each).
The experiment that led to the kernel (one consumer or two, TMA or register stores; session 13, calls 2-4) is in
git at commit 10051a4, benchmarks/_exp_gluon_pingpong.py.

    python3 benchmarks/_exp_pingpong.py --out $OUT/pingpong.json
"""

from __future__ import annotations

import argparse
import json

import torch
import triton.testing

from lowbit.ops import int8 as int8_ops
from lowbit.ops import int8_hopper
from sweep import int8_operands, write

TOKENS = 16 * 2048
STEP = [(TOKENS, 1536, 1536, 8), (TOKENS, 6144, 1536, 3), (TOKENS, 1536, 6144, 3),
        (1536, 1536, TOKENS, 4), (6144, 1536, TOKENS, 2), (1536, 6144, TOKENS, 1)]
SQUARES = [(s, s, s, 0) for s in (2048, 4096, 8192)]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    args = p.parse_args()
    gen = torch.Generator(device="cuda").manual_seed(0)
    rows, step_ms = [], {"triton": 0.0, "gluon": 0.0}
    for m, n, k, calls in STEP + SQUARES:
        a, bt, sa, sb = int8_operands(m, n, k, gen)
        runs = {"triton": lambda: int8_ops.scaled_int8_mm_tma(a, bt, sa, sb, None, torch.bfloat16, int8_ops.TMA_TILE),
                "gluon": lambda: int8_hopper.scaled_mm_pingpong(a, bt, sa, sb, None, torch.bfloat16)}
        row = dict(m=m, n=n, k=k, calls_a_layer=calls, equal=torch.equal(runs["triton"](), runs["gluon"]()))
        for name, fn in runs.items():
            ms = triton.testing.do_bench(fn, rep=100)
            row[name] = dict(us=round(ms * 1e3, 1), tops=round(2 * m * n * k / (ms * 1e-3) / 1e12, 1))
            step_ms[name] += 24 * calls * ms
        row["speedup"] = round(row["triton"]["us"] / row["gluon"]["us"], 3)
        print(json.dumps(row), flush=True)
        rows.append(row)
        write(args.out, rows + [{"step_ms": {key: round(v, 1) for key, v in step_ms.items()}}])
    print(json.dumps({"step_ms": {key: round(v, 1) for key, v in step_ms.items()}}), flush=True)


if __name__ == "__main__":
    main()
