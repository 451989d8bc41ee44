"""Integer affine quantization, 2-8 bits: the one definition every layer, method and kernel uses.

    x ≈ (q - z) · s

Symmetric (absmax): z = 0, codes in [-(2^(b-1) - 1), 2^(b-1) - 1], s = max|x| / qmax. The code
-2^(b-1) is left unused so that the grid is symmetric and -x quantizes to -q.
Asymmetric (zero-point): codes in [0, 2^b - 1], s = (max - min) / (2^b - 1), z = round(-min / s).

Granularity says which elements share one (s, z):
- "tensor":  one pair for the whole tensor;
- "channel": one per row of a weight [out, in] (per output channel);
- "token":   one per row of an activation [..., tokens, features] (per token) — the same
             reduction as "channel", named for what the rows are;
- "group":   one per `group_size` consecutive elements along the last (input) dim.
Vector-wise quantization (LLM.int8()) is a property of a matmul, not of one tensor: rows of X
per token and rows of W per output channel; see `vectorwise_int8_matmul`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

GRANULARITIES = ("tensor", "channel", "token", "group")
ROUNDINGS = ("nearest", "stochastic")


def check_bits(bits: int, name: str = "bits") -> None:
    if not isinstance(bits, int) or isinstance(bits, bool) or not 2 <= bits <= 8:
        raise ValueError(f"{name} must be an integer from 2 to 8, got {bits!r}")


def check_finite(x: torch.Tensor, name: str = "x") -> None:
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or Inf values; cannot quantize it")


def code_range(bits: int, symmetric: bool) -> tuple[int, int]:
    """(qmin, qmax) of the integer codes."""
    check_bits(bits)
    if symmetric:
        qmax = 2 ** (bits - 1) - 1
        return -qmax, qmax
    return 0, 2**bits - 1


def round_codes(x: torch.Tensor, rounding: str = "nearest", generator: torch.Generator | None = None) -> torch.Tensor:
    """Round to integers: nearest (ties to even) or stochastic, floor(x + U[0, 1)), which is unbiased."""
    if rounding == "nearest":
        return torch.round(x)
    if rounding == "stochastic":
        noise = torch.rand(x.shape, dtype=x.dtype, device=x.device, generator=generator)
        return torch.floor(x + noise)
    raise ValueError(f"rounding must be one of {ROUNDINGS}, got {rounding!r}")


def _grouped(x: torch.Tensor, granularity: str, group_size: int | None) -> torch.Tensor:
    """View x so that each quantization group is one row of the last dim."""
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
    if granularity == "tensor":
        return x.reshape(1, -1)
    if x.dim() < 1:
        raise ValueError("x must have at least one dimension for per-channel/token/group quantization")
    if granularity in ("channel", "token"):
        return x.reshape(-1, x.shape[-1])
    if group_size is None or group_size < 1:
        raise ValueError(f"group_size must be a positive integer for granularity='group', got {group_size!r}")
    if x.shape[-1] % group_size:
        raise ValueError(f"group_size {group_size} does not divide the input dim {x.shape[-1]}")
    return x.reshape(-1, group_size)


def scale_shape(shape: torch.Size, granularity: str, group_size: int | None) -> tuple[int, ...]:
    """Shape in which scales and zeros are stored: [] per tensor, [..., 1] per row, [..., in/g] per group."""
    if granularity == "tensor":
        return ()
    if granularity in ("channel", "token"):
        return (*shape[:-1], 1)
    return (*shape[:-1], shape[-1] // group_size)


@dataclass
class IntQuantized:
    """Codes and their parameters. Symmetric codes are int8; asymmetric codes and zeros are uint8."""

    codes: torch.Tensor
    scale: torch.Tensor
    zero: torch.Tensor | None
    bits: int
    granularity: str
    group_size: int | None = None

    def dequantize(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return dequantize(self.codes, self.scale, self.zero, self.granularity, self.group_size, dtype)


def absmax_scale(amax: torch.Tensor, qmax: float) -> torch.Tensor:
    """The scale of a symmetric (absmax) format, int or FP8: amax / qmax as IEEE division rounds it, at
    least the smallest normal float (an all-zero row). Divided by a tensor: CUDA torch divides by a
    Python number as a multiplication by its reciprocal, one ulp off the CPU and the Triton kernels."""
    return (amax / amax.new_full((), qmax)).clamp_min(torch.finfo(torch.float32).tiny)


def affine_params(rows: torch.Tensor, bits: int, symmetric: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Scale and zero point (float, integral) of each row of a 2-D tensor: the one definition
    that RTN, GPTQ and AWQ share."""
    qmin, qmax = code_range(bits, symmetric)
    if symmetric:
        return absmax_scale(rows.abs().amax(dim=1), qmax), None
    lo = rows.amin(dim=1).clamp(max=0.0)  # keep 0 exactly representable (zero padding, ReLU)
    hi = rows.amax(dim=1).clamp(min=0.0)
    scale = ((hi - lo) / lo.new_full((), qmax - qmin)).clamp_min(torch.finfo(torch.float32).tiny)  # by a tensor, as above
    return scale, torch.round(-lo / scale).clamp_(qmin, qmax)


def quantize_with(
    x: torch.Tensor,
    scale: torch.Tensor,
    zero: torch.Tensor | None,
    bits: int,
    symmetric: bool,
    rounding: str = "nearest",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Integer codes (as float) of x under given, broadcastable scale and zero: clamp(round(x/s) + z)."""
    qmin, qmax = code_range(bits, symmetric)
    q = x / scale if zero is None else x / scale + zero
    return round_codes(q, rounding, generator).clamp_(qmin, qmax)


def quantize(
    x: torch.Tensor,
    bits: int = 8,
    *,
    symmetric: bool = True,
    granularity: str = "channel",
    group_size: int | None = None,
    rounding: str = "nearest",
    generator: torch.Generator | None = None,
    validate: bool = True,
) -> IntQuantized:
    """Round-to-nearest (or stochastic) affine quantization of a float tensor. `validate=False`
    skips the NaN/Inf check: activations and gradients on a hot path, where it costs a device sync."""
    check_bits(bits)
    if validate:
        check_finite(x)
    rows = _grouped(x.detach().float(), granularity, group_size)
    scale, zero = affine_params(rows, bits, symmetric)
    q = quantize_with(rows, scale[:, None], None if zero is None else zero[:, None], bits, symmetric, rounding, generator)
    sshape = scale_shape(x.shape, granularity, group_size)
    return IntQuantized(
        codes=q.to(torch.int8 if symmetric else torch.uint8).reshape(x.shape),
        scale=scale.reshape(sshape),
        zero=None if zero is None else zero.to(torch.uint8).reshape(sshape),
        bits=bits,
        granularity=granularity,
        group_size=group_size,
    )


def expand_to(p: torch.Tensor, granularity: str, group_size: int | None, g_idx: torch.Tensor | None = None) -> torch.Tensor:
    """Per-group parameters broadcastable against the codes. `g_idx[c]` names the group of input
    column c when groups are not contiguous (GPTQ with act-order); else column c is in c // g."""
    if granularity != "group":
        return p
    if g_idx is not None:
        return p[..., g_idx.long()]
    return p.repeat_interleave(group_size, dim=-1)


def dequantize(
    codes: torch.Tensor,
    scale: torch.Tensor,
    zero: torch.Tensor | None,
    granularity: str,
    group_size: int | None = None,
    dtype: torch.dtype = torch.float32,
    g_idx: torch.Tensor | None = None,
) -> torch.Tensor:
    q = codes.float()
    if zero is not None:
        q = q - expand_to(zero.float(), granularity, group_size, g_idx)
    return (q * expand_to(scale.float(), granularity, group_size, g_idx)).to(dtype)


def vectorwise_int8_matmul(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """LLM.int8()'s vector-wise product X @ Wᵀ: X rows per token, W rows per output channel,
    int32 accumulation, then the outer product of the two scale vectors dequantizes."""
    xq = quantize(x.reshape(-1, x.shape[-1]), 8, granularity="token")
    wq = quantize(w, 8, granularity="channel")
    acc = int8_matmul(xq.codes, wq.codes)
    out = acc.float() * xq.scale * wq.scale.reshape(1, -1)
    return out.reshape(*x.shape[:-1], w.shape[0])


def int8_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Exact int8 A @ Bᵀ with int32 accumulation. cuBLAS needs M > 16 and K, N multiples of 8;
    other CUDA shapes take float64 (exact while |sum| < 2^53, far above 127²·K) — never a wrong answer."""
    if not a.is_cuda:
        return torch._int_mm(a, b.t())
    m, k = a.shape
    if m > 16 and k % 8 == 0 and b.shape[0] % 8 == 0:
        return torch._int_mm(a, b.t())
    return (a.double() @ b.double().t()).to(torch.int32)
