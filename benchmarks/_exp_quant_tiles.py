"""Experiment (prepared in session 15, not run): the plain quantization passes' tiles at both of a llama2-1b layer's
widths, timed as CUDA-graph replays.

Eight of a layer's eleven activation and gradient quantizations are 32768 x 1536 (x, the attention's output, dq, dk,
dv, the residual's gradients), where session 11 measured the absmax pass at 2671 GB/s against 3406 at 32768 x 6144:
with 16 programs an SM a strip there is two 32-row steps long, and each program ends with 128 column atomics.
Session 11 timed the passes eagerly; a launch of `quantize_rows_cols` costs ~100-160 µs of host time (session 15,
call 2), about what the passes take on the GPU at 1536 columns, so these are timed as graph replays
(`bench.timing.gpu_ms`). Per width, format and tiling (BLOCK_M, BLOCK_N, absmax warps, absmax programs an SM, codes
warps): µs of both passes and GB/s of what they must move (the input read twice, two code sets written).

    python3 benchmarks/_exp_quant_tiles.py --out $OUT/quant-tiles.json
"""

from __future__ import annotations

import json

import torch

from lowbit.bench.timing import gpu_ms
from lowbit.ops import rows_cols as rc
from sweep import out_path, step_activations, write

TILES = [(32, 128, 2, 16, 4), (32, 128, 2, 8, 4), (32, 128, 2, 4, 4), (32, 128, 4, 4, 4), (64, 128, 4, 8, 4),
         (16, 256, 4, 8, 4), (32, 256, 4, 8, 8), (32, 64, 2, 16, 2)]


def main() -> None:
    out = out_path(__doc__)
    rows = []
    for x in step_activations():
        n = x.shape[1]
        nbytes = 2 * x.numel() * 2 + 2 * x.numel()
        for fmt in ("int8", "e4m3"):
            ref = rc.quantize_tiled(x, fmt)
            row = dict(m=x.shape[0], n=n, fmt=fmt, default="x".join(map(str, rc._tiles(x))))
            for tiles in TILES:
                fn = lambda: rc.quantize_tiled(x, fmt, tiles=tiles)  # noqa: E731
                same = all(torch.equal(a, b) for a, b in zip(fn(), ref))
                ms, how = gpu_ms(fn)
                row["x".join(map(str, tiles))] = dict(us=round(ms * 1e3, 1), gbs=round(nbytes / ms / 1e6), same=same, timing=how)
            print(json.dumps(row), flush=True)
            rows.append(row)
            write(out, rows)


if __name__ == "__main__":
    main()
