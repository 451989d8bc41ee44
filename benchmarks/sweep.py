"""What the kernel sweeps (tune_*.py) share: the Llama-2-7B linear shapes and one timing (`lowbit.bench.dispatch`'s, which
`lowbit bench dispatch` times with)."""

from __future__ import annotations

import argparse
import json

import torch
import triton

from lowbit.bench.dispatch import bench_cold_us, bench_us, cold_copies, storage  # noqa: F401 - what the sweeps import from here

SHAPES = [(4096, 4096), (4096, 11008), (11008, 4096)]  # (K, N)


def int8_operands(m: int, n: int, k: int, gen: torch.Generator):
    """Random K-major int8 operands a [M, K] and bt [N, K] and float32 scales for the INT8 matmuls."""
    a = torch.randint(-127, 128, (m, k), device="cuda", dtype=torch.int8, generator=gen)
    bt = torch.randint(-127, 128, (n, k), device="cuda", dtype=torch.int8, generator=gen)
    return a, bt, torch.rand(m, device="cuda", generator=gen) * 1e-3, torch.rand(n, device="cuda", generator=gen) * 1e-3


def step_activations():
    """bf16 tensors shaped as a llama2-1b training step's activations at 16 x 2048 tokens, both widths of a layer
    (random, seeded)."""
    gen = torch.Generator(device="cuda").manual_seed(0)
    for n in (1536, 6144):
        yield torch.randn(32768, n, device="cuda", generator=gen).to(torch.bfloat16)


def out_path(doc: str) -> str:
    """The `--out` JSON path of an experiment whose command line takes only that (its docstring's first line: --help)."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--out", required=True)
    return p.parse_args().out


def write(path: str, rows: list) -> None:
    """The results so far, with the GPU and versions (a run cut by a time limit keeps them)."""
    info = dict(gpu=torch.cuda.get_device_name(), torch=torch.__version__, triton=triton.__version__)
    with open(path, "w") as f:
        json.dump(dict(info=info, rows=rows), f, indent=1)
