"""The quantization passes with and without a producer inside (`ops.rows_cols`: none, silu(g)·u, the SiLU gate's
two gradients) at a llama2-1b MLP's shape (32768 x 6144 bf16), for several tiles and warp counts: µs of both passes
(do_bench) and GB/s of what they must move (each input read twice, the codes written once). Session 14 (call 6)
found the producer passes at ~2.6 TB/s on the default tile (32 x 128, 2 and 4 warps) where the plain ones move 3.1:
their codes pass issues ~93 instructions a pair of elements (sm_90 SASS, compiled on the CPU) against ~28 an element.

    python3 benchmarks/_exp_producer_tiles.py --out $OUT/producer-tiles.json
"""

from __future__ import annotations

import argparse
import json

import torch
import triton.testing

from lowbit.ops import rows_cols as rc
from sweep import write

TILES = [(32, 128, 2, 16, 4), (32, 128, 4, 8, 8), (64, 128, 4, 8, 8), (16, 128, 2, 16, 2), (32, 64, 2, 16, 2), (64, 64, 4, 8, 4)]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    args = p.parse_args()
    m, n = 32768, 6144
    gen = torch.Generator(device="cuda").manual_seed(0)
    inputs = [torch.randn(m, n, device="cuda", generator=gen).to(torch.bfloat16) for _ in range(3)]
    rows = []
    for producer in rc.PRODUCERS:
        k = rc.PRODUCER_INPUTS[producer]
        outs = 2 if producer == "silu_mul_grad" else 1
        nbytes = 2 * k * m * n * 2 + outs * 2 * m * n  # inputs read by both passes, two code sets a tensor
        ref = rc.quantize_tiled(inputs[0], producer=producer, inputs=tuple(inputs[1:k]))
        row = dict(producer=producer or "none", m=m, n=n)
        for tiles in TILES:
            fn = lambda: rc.quantize_tiled(inputs[0], producer=producer, inputs=tuple(inputs[1:k]), tiles=tiles)  # noqa: E731
            same = all(torch.equal(a, b) for a, b in zip(fn(), ref))
            us = triton.testing.do_bench(fn, rep=50) * 1e3
            row["x".join(map(str, tiles))] = dict(us=round(us, 1), gbs=round(nbytes / us / 1e3), same=same)
        print(json.dumps(row), flush=True)
        rows.append(row)
        write(args.out, rows)


if __name__ == "__main__":
    main()
