"""FP8 E4M3 scaled matmul (row-wise or tensor-wise scales) and fused per-token FP8 quantization.

    out[m, n] = (Σ_k a[m, k] · b[n, k]) · scale_a[m] · scale_b[n]   (+ bias[n])

a [M, K] and b [N, K] are E4M3 codes — b in the linear layout, so out = a @ bᵀ — with float32
scales per row (row-wise: scale_a [M, 1], scale_b [N, 1] or [1, N]) or one each (tensor-wise).
On an FP8 GPU (sm_89+) this is `torch._scaled_mm`, cuBLASLt/CUTLASS, under its rules: the first
operand row-major, the second column-major (b.t() of a row-major [N, K] is exactly that), K and N
multiples of 16, row-wise scales (M, 1) and (1, N) float32, and a bf16 output for row-wise
scaling (another out_dtype is cast from that bf16 result: one more rounding, far below FP8's own
error). It runs with cuBLAS's fast accumulation (`use_fast_accum`: the tensor cores' own accumulator,
not promoted to float32 every few K-steps), as torchao's FP8 inference and training forward do: this
op serves inference, where the output's error is the activations' FP8 rounding (~2^-4 relative).
Anything else — CPU tensors, other shapes, an E5M2 operand — takes the float reference:
the codes' exact values in float32, one matmul, the scales in the epilogue.

`quantize_rows_fp8` is `lowbit.formats.fp.quantize_fp8(x, "e4m3", "token")` in one pass on CUDA
(the tile quantizer of `ops.tile_scaled` with one tile per row): identical codes and scales.
Both are torch.library custom ops (`lowbit::scaled_fp8_mm`, `lowbit::quantize_rows_fp8`).
"""

from __future__ import annotations

import functools

import torch

from ..formats import fp
from .tile_scaled import MAX_TILE, quantize_tiles_triton, triton
from .tiles import cuda_index, row_major_copy

FP8_DTYPES = (torch.float8_e4m3fn, torch.float8_e5m2)


@functools.cache
def _fp8_gpu(index: int) -> bool:
    return torch.cuda.get_device_capability(index) >= (8, 9)


def fp8_gpu(device: torch.device) -> bool:
    """Whether `device` is a GPU with FP8 matmuls (compute capability 8.9 or newer: Ada, Hopper, Blackwell)."""
    return device.type == "cuda" and _fp8_gpu(cuda_index(device))


def _check_mm(a, b, scale_a, scale_b, bias) -> None:
    if a.dtype not in FP8_DTYPES or b.dtype not in FP8_DTYPES:
        raise ValueError(f"a and b must be float8 (e4m3fn or e5m2), got {a.dtype} and {b.dtype}")
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"a [M, K] and b [N, K] must agree on K, got {tuple(a.shape)} and {tuple(b.shape)}")
    if scale_a.numel() not in (1, a.shape[0]):
        raise ValueError(f"scale_a must hold 1 (tensor-wise) or M={a.shape[0]} (row-wise) values, got {scale_a.numel()}")
    if scale_b.numel() not in (1, b.shape[0]):
        raise ValueError(f"scale_b must hold 1 (tensor-wise) or N={b.shape[0]} (row-wise) values, got {scale_b.numel()}")
    if bias is not None and tuple(bias.shape) != (b.shape[0],):
        raise ValueError(f"bias must be of shape ({b.shape[0]},), got {tuple(bias.shape)}")


def scaled_mm_takes(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether `torch._scaled_mm` accepts these operands (the GPU's rules, which CPU torch does not check)."""
    return (
        a.is_cuda and b.is_cuda and fp8_gpu(a.device)
        and a.dtype == b.dtype == torch.float8_e4m3fn and a.shape[1] % 16 == 0 and b.shape[0] % 16 == 0
    )


def scaled_fp8_mm_scaled_mm(
    a: torch.Tensor, b: torch.Tensor, scale_a: torch.Tensor, scale_b: torch.Tensor,
    bias: torch.Tensor | None = None, out_dtype: torch.dtype = torch.bfloat16,
) -> torch.Tensor:
    """The `torch._scaled_mm` path; the caller checks `scaled_mm_takes`."""
    m, n = a.shape[0], b.shape[0]
    sa, sb = scale_a.float(), scale_b.float()
    if sa.numel() == 1 and sb.numel() == 1:  # tensor-wise
        sa, sb = sa.reshape(()), sb.reshape(())
    else:  # row-wise; a lone tensor-wise scale is broadcast (cuBLAS takes no mixed pair)
        sa = sa.reshape(-1, 1).expand(m, 1).contiguous()
        sb = sb.reshape(1, -1).expand(1, n).contiguous()
    a, b = row_major_copy(a), row_major_copy(b)  # a transposed view copied at bandwidth, where torch's copy is ~10x slower
    bf16 = torch.bfloat16
    out = torch._scaled_mm(a, b.t(), scale_a=sa, scale_b=sb, bias=None if bias is None else bias.to(bf16), out_dtype=bf16,
                           use_fast_accum=True)  # inference: see the module doc
    return out if out_dtype == bf16 else out.to(out_dtype)


def scaled_fp8_mm_reference(
    a: torch.Tensor, b: torch.Tensor, scale_a: torch.Tensor, scale_b: torch.Tensor,
    bias: torch.Tensor | None = None, out_dtype: torch.dtype = torch.bfloat16,
) -> torch.Tensor:
    """float32: the codes' values are exact, each product is exact, sums round in float32."""
    _check_mm(a, b, scale_a, scale_b, bias)
    out = (a.float() @ b.float().t()) * scale_a.float().reshape(-1, 1) * scale_b.float().reshape(1, -1)
    if bias is not None:
        out = out + bias.float()
    return out.to(out_dtype)


@torch.library.custom_op("lowbit::scaled_fp8_mm", mutates_args=())
def scaled_fp8_mm(
    a: torch.Tensor, b: torch.Tensor, scale_a: torch.Tensor, scale_b: torch.Tensor,
    bias: torch.Tensor | None = None, out_dtype: torch.dtype = torch.bfloat16,
) -> torch.Tensor:
    """(a @ bᵀ) · scale_a · scale_b (+ bias), a [M, K] and b [N, K] FP8: `torch._scaled_mm` where
    the GPU takes it, the float32 reference elsewhere."""
    _check_mm(a, b, scale_a, scale_b, bias)
    if scaled_mm_takes(a, b):
        return scaled_fp8_mm_scaled_mm(a, b, scale_a, scale_b, bias, out_dtype)
    return scaled_fp8_mm_reference(a, b, scale_a, scale_b, bias, out_dtype)


@scaled_fp8_mm.register_fake
def _(a, b, scale_a, scale_b, bias=None, out_dtype=torch.bfloat16):
    return a.new_empty(a.shape[0], b.shape[0], dtype=out_dtype)


def quantize_rows_fp8_reference(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The definition: `lowbit.formats.fp`, E4M3, absmax per row."""
    return fp.quantize_fp8(x, "e4m3", "token", validate=False)


def quantize_rows_fp8_triton(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass per row: absmax, scale and E4M3 codes (rows up to 16384 wide)."""
    if x.dim() != 2:
        raise ValueError(f"x must be 2-D [M, K], got shape {tuple(x.shape)}")
    return quantize_tiles_triton(x, "e4m3", tile=max(1, x.shape[1]))


@torch.library.custom_op("lowbit::quantize_rows_fp8", mutates_args=())
def quantize_rows_fp8(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row (per-token) E4M3 codes [M, K] and float32 scales [M, 1]; one fused pass on CUDA."""
    if triton is not None and x.is_cuda and x.dim() == 2 and x.shape[1] <= MAX_TILE:
        return quantize_rows_fp8_triton(x)
    return quantize_rows_fp8_reference(x)


@quantize_rows_fp8.register_fake
def _(x):
    return x.new_empty(x.shape, dtype=torch.float8_e4m3fn), x.new_empty(*x.shape[:-1], 1, dtype=torch.float32)
