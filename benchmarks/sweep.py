"""What the kernel sweeps (tune_*.py) share: the Llama-2-7B linear shapes and one timing."""

from __future__ import annotations

import argparse
import json

import torch
import triton
import triton.testing

from lowbit.formats.packing import pack
from lowbit.ops.tiles import cdiv

SHAPES = [(4096, 4096), (4096, 11008), (11008, 4096)]  # (K, N)


def bench_us(fn, rep: int = 20) -> float:
    """Median µs of fn replayed as a CUDA graph (launch gaps do not count)."""
    return triton.testing.do_bench_cudagraph(fn, rep=rep) * 1e3


def storage(k: int, n: int, bits: int, group: int, zero: bool, dtype: torch.dtype | None, gen: torch.Generator):
    """Random weight-only storage on the GPU: packed codes (dtype None) or int8 / FP8 values `dtype`,
    float32 scales a group, uint8 zero points when `zero`."""
    if dtype is None:
        q = pack(torch.randint(0, 2**bits, (n, k), generator=gen, device="cuda", dtype=torch.uint8), bits)
    else:
        q = (torch.randn(n, k, generator=gen, device="cuda") * 4).to(dtype)
    s = torch.rand(n, k // group, generator=gen, device="cuda") * 0.01
    z = torch.randint(0, 2**bits, s.shape, generator=gen, device="cuda", dtype=torch.uint8) if zero else None
    return q, s, z


def int8_operands(m: int, n: int, k: int, gen: torch.Generator):
    """Random K-major int8 operands a [M, K] and bt [N, K] and float32 scales for the INT8 matmuls."""
    a = torch.randint(-127, 128, (m, k), device="cuda", dtype=torch.int8, generator=gen)
    bt = torch.randint(-127, 128, (n, k), device="cuda", dtype=torch.int8, generator=gen)
    return a, bt, torch.rand(m, device="cuda", generator=gen) * 1e-3, torch.rand(n, device="cuda", generator=gen) * 1e-3


def cold_copies(nbytes: int) -> int:
    """How many copies of `nbytes` of data to cycle through so that one pass reads 3x the L2. Repeated runs
    over one buffer that fits in the L2 time the cache, not the memory: the 7B shapes' int4 weights are
    8-23 MB, an H200's L2 60 MB (session 7's sweeps timed them so, before this)."""
    return max(1, cdiv(3 * torch.cuda.get_device_properties(0).L2_cache_size, nbytes))


def bench_cold_us(fns: list) -> float:
    """Median µs of one call of `fns` (the same call on different copies of the data), all of them replayed
    as one CUDA graph: each reads its data from memory, not from the L2."""
    return bench_us(lambda: [f() for f in fns]) / len(fns)


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
