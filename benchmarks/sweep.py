"""What the kernel sweeps (tune_*.py) share: the Llama-2-7B linear shapes and one timing."""

from __future__ import annotations

import json

import torch
import triton
import triton.testing

SHAPES = [(4096, 4096), (4096, 11008), (11008, 4096)]  # (K, N)


def bench_us(fn, rep: int = 20) -> float:
    """Median µs of fn replayed as a CUDA graph (launch gaps do not count)."""
    return triton.testing.do_bench_cudagraph(fn, rep=rep) * 1e3


def write(path: str, rows: list) -> None:
    """The results so far, with the GPU and versions (a run cut by a time limit keeps them)."""
    info = dict(gpu=torch.cuda.get_device_name(), torch=torch.__version__, triton=triton.__version__)
    with open(path, "w") as f:
        json.dump(dict(info=info, rows=rows), f, indent=1)
