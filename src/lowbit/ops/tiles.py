"""What the Triton kernels share: whether they run in the interpreter, the order in which programs
visit output tiles, split-K, counters for a last program, and a row-major copy of a transposed operand."""

from __future__ import annotations

import functools
import os

import torch
from torch.library import wrap_triton

try:
    import triton
    import triton.language as tl
except ImportError:  # the kernels' modules fall back to their reference paths
    triton = None



def cdiv(a: int, b: int) -> int:
    """⌈a / b⌉ for the launchers: triton.cdiv (a constexpr function since Triton 3.5) takes ~5 µs a call,
    which an eager prefill pays a few times per linear (swapped_config: 35 → 2 µs)."""
    return -(-a // b)


def next_power_of_2(n: int) -> int:
    """The smallest power of two ≥ n (1 for n ≤ 1), in plain Python for the same reason as `cdiv`."""
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def cuda_index(device: torch.device) -> int:
    """The index of a CUDA device, the current one where the device names none ("cuda")."""
    return device.index if device.index is not None else torch.cuda.current_device()


@functools.cache
def _sm_count(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


def sm_count(device: torch.device) -> int:
    """The streaming multiprocessors of a CUDA device, for grids sized to the GPU (queried once a device)."""
    return _sm_count(cuda_index(device))


_COUNTERS: dict[tuple[int, int], torch.Tensor] = {}


def tile_counters(device: torch.device, n: int) -> torch.Tensor:
    """int32 counters, zero between calls, for kernels whose last program to finish a piece of work does the rest
    (the swapped kernel's split-K sum, the outlier columns' list); the last program resets its own counter.
    One set a device and stream: calls in one stream run one after another, calls in two streams may overlap.
    Made (zeroed) on a stream's first call, or a larger one: under graph capture that zeroing is captured too. A set
    is never freed, since a captured graph keeps using it; that is 4 KB a stream, and `torch.cuda.graph` captures on
    one stream a process unless given another (`CUDAGraph.default_capture_stream`, torch 2.11), so it does not grow
    with the number of graphs."""
    key = (cuda_index(device), torch.cuda.current_stream(device).cuda_stream) if device.type == "cuda" else (-1, 0)
    have = _COUNTERS.get(key)
    if have is None or have.numel() < n:
        have = _COUNTERS[key] = torch.zeros(max(n, 1024), device=device, dtype=torch.int32)
    return have


def interpreting() -> bool:
    """Whether Triton runs kernels in its interpreter (CPU tensors, CI): small tiles then, and no autotuning."""
    return os.environ.get("TRITON_INTERPRET") == "1"


if triton is not None:

    @triton.jit
    def grouped_tile(pid, M, N, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, GROUP_M: tl.constexpr):
        """(pid_m, pid_n) of program `pid` in grouped order: GROUP_M row-tiles share the same
        column-tiles of B (the weights) while those sit in L2."""
        num_pid_m = tl.cdiv(M, BLOCK_M)
        num_pid_n = tl.cdiv(N, BLOCK_N)
        per_group = GROUP_M * num_pid_n
        first_m = (pid // per_group) * GROUP_M
        group_rows = tl.minimum(num_pid_m - first_m, GROUP_M)
        return first_m + (pid % per_group) % group_rows, (pid % per_group) // group_rows

    @triton.jit
    def _row_major_copy_kernel(x_ptr, y_ptr, R, C, stride_xc, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
        """y [R, C] row-major from x [R, C] column-major (x[r, c] at r + c·stride_xc): each tile read down x's
        columns and written along y's rows, both coalesced (Triton converts the layout through shared memory)."""
        offs_r = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
        offs_c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
        mask = (offs_r < R)[:, None] & (offs_c < C)[None, :]
        t = tl.load(x_ptr + offs_r[:, None] + offs_c[None, :].to(tl.int64) * stride_xc, mask=mask)
        tl.store(y_ptr + offs_r[:, None].to(tl.int64) * C + offs_c[None, :], t, mask=mask)
else:  # no Triton: the kernels' modules take their reference paths
    grouped_tile = None


# BLOCK_R, BLOCK_C, warps. H200 (session 16, call 4, `benchmarks/_exp_transpose_copy.py`), µs at 1024² / 4096² / 8192²
# int8: 2.0 / 6.2 / 36.5, within ~10 % of the best of 8 tiles at each size; torch's copy 8.5 / 91.2 / 380.5.
COPY_TILE = (128, 128, 8)


def row_major_copy(x: torch.Tensor, tile: tuple[int, int, int] = COPY_TILE) -> torch.Tensor:
    """x.contiguous(): a transposed view (column-major) through `_row_major_copy_kernel` on the GPU or in the
    interpreter. torch's own copy of a transposed int8 matrix moved ~0.35 TB/s on the H200 (session 16, call 3: ~80 µs
    of a 4096³ A@B's 185), as its threads write one byte each down a column; this one 3.5-3.7 TB/s at 8192² (call 4;
    5.4 at 4096², whose 16 MB sit in the L2)."""
    runs = triton is not None and (x.is_cuda or interpreting())
    if not runs or x.dim() != 2 or x.numel() == 0 or x.stride(0) != 1 or x.stride(1) < x.shape[0]:  # (last: not a dense transpose)
        return x.contiguous()
    r, c = x.shape
    y = torch.empty(r, c, device=x.device, dtype=x.dtype)
    bytes_ = (lambda t: t.view(torch.int8)) if x.element_size() == 1 else (lambda t: t)  # FP8 codes moved as bytes
    br, bc, warps = tile
    wrap_triton(_row_major_copy_kernel)[(cdiv(r, br), cdiv(c, bc))](
        bytes_(x), bytes_(y), r, c, x.stride(1), BLOCK_R=br, BLOCK_C=bc, num_warps=warps)
    return y


def split_k_plan(total: int, step: int, split: int) -> tuple[int, int]:
    """Cut K (`total` columns or words) into at most `split` pieces of whole `step`s, none empty:
    (length of a piece, number of pieces). An empty K is one piece."""
    steps = cdiv(total, step)
    if steps == 0:
        return step, 1
    per = cdiv(steps, max(1, min(split, steps))) * step
    return per, cdiv(total, per)


def split_k_partials(out: torch.Tensor, pieces: int) -> torch.Tensor:
    """Where the programs write: `out` itself for one piece, else fp32 partials [pieces, M, N]."""
    return out if pieces == 1 else torch.empty(pieces, *out.shape, device=out.device, dtype=torch.float32)


def sum_split_k(out: torch.Tensor, partials: torch.Tensor) -> torch.Tensor:
    """`out` holding the partials' sum, in a fixed order (deterministic, unlike atomics)."""
    if partials is not out:
        out.copy_(partials.sum(dim=0))
    return out
