"""Experiment (session 16): the device's read and copy rates on a training step's activation shapes, the floor
under the quantization passes.

The INT8 step's quantization (18 tensors a layer, 24.2 G elements a step at 16 x 2048 tokens) must read each bf16
tensor twice (the column scales need the whole tensor's absmax before any column code) and write two code sets:
6 bytes an element. This times, as CUDA-graph replays on 32768 x 1536 and x 6144 bf16 tensors, a read-only
reduction (`torch.amax`: 2 bytes an element), a bf16 copy (4 bytes) and lowbit's two passes (6 bytes), in GB/s of
the bytes each must move.

    python3 benchmarks/_exp_bandwidth.py --out $OUT/bandwidth.json
"""

from __future__ import annotations

import json

import torch

from lowbit.bench.timing import gpu_ms
from lowbit.ops import rows_cols as rc
from sweep import out_path, step_activations, write


def main() -> None:
    out = out_path(__doc__)
    rows = []
    for x in step_activations():
        n = x.shape[1]
        y = torch.empty_like(x)
        e = x.numel()
        cases = {"read (torch.amax)": (lambda: torch.amax(x), 2 * e), "copy bf16": (lambda: y.copy_(x), 4 * e),
                 "quantize_rows_cols int8": (lambda: rc.quantize_tiled(x, "int8"), 6 * e),
                 "quantize_rows_cols e4m3": (lambda: rc.quantize_tiled(x, "e4m3"), 6 * e)}
        for what, (fn, nbytes) in cases.items():
            fn()
            ms, how = gpu_ms(fn)
            row = dict(m=x.shape[0], n=n, what=what, us=round(ms * 1e3, 1), gbs=round(nbytes / ms / 1e6), timing=how)
            print(json.dumps(row), flush=True)
            rows.append(row)
    write(out, rows)


if __name__ == "__main__":
    main()
