"""Experiment (session 16): the row-major copy of a transposed int8 matrix (`ops.int8.row_major_copy`), which A@B and
Aᵀ@B pay before the TMA matmul on Hopper, per tile against torch's `.contiguous()`, as CUDA-graph replays; GB/s of
the bytes read and written. Session 16 call 3: at 4096³ the copy by torch cost ~80 µs of A@B's 185.

    python3 benchmarks/_exp_transpose_copy.py --out $OUT/transpose-copy.json
"""

from __future__ import annotations

import json

import torch

from lowbit.bench.timing import gpu_ms
from lowbit.ops import tiles
from sweep import out_path, write

TILES = [(64, 64, 4), (64, 128, 4), (128, 64, 4), (128, 128, 4), (128, 128, 8), (32, 128, 4), (128, 32, 4), (64, 64, 2)]


def main() -> None:
    out = out_path(__doc__)
    gen = torch.Generator(device="cuda").manual_seed(0)
    rows = []
    for size in (1024, 4096, 8192):
        x = torch.randint(-127, 128, (size, size), device="cuda", dtype=torch.int8, generator=gen).t()
        ref = x.contiguous()
        nbytes = 2 * x.numel()
        row = dict(size=size, default="x".join(map(str, tiles.COPY_TILE)))
        cases = {"torch .contiguous()": lambda: x.contiguous()}
        cases.update({"x".join(map(str, t)): (lambda t=t: tiles.row_major_copy(x, t)) for t in TILES})
        for what, fn in cases.items():
            same = torch.equal(fn(), ref)
            ms, how = gpu_ms(fn)
            row[what] = dict(us=round(ms * 1e3, 1), gbs=round(nbytes / ms / 1e6), same=same, timing=how)
        print(json.dumps(row), flush=True)
        rows.append(row)
        write(out, rows)


if __name__ == "__main__":
    main()
