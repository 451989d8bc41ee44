"""Low-bit floating point: FP8 (E4M3, E5M2) and FP4 (E2M1, E1M2, E3M0), with scales.

A minifloat with E exponent bits, M mantissa bits and bias b = 2^(E-1) - 1 encodes
    (-1)^s · 2^(1-b) · m/2^M         for exponent field 0 (subnormal),
    (-1)^s · 2^(e-b) · (1 + m/2^M)   otherwise.
FP8 E4M3 ("fn") keeps only the all-ones code for NaN (max 448); E5M2 reserves the top exponent
for Inf/NaN like IEEE (max 57344). The FP4 variants have no special values. FP8 uses torch's
hardware dtypes; FP4 has none, so its 16 codes are a lookup table (see codebook.py).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from . import codebook
from .int import absmax_scale, check_finite


@dataclass(frozen=True)
class FloatFormat:
    name: str
    exp_bits: int
    man_bits: int
    special: str  # "none" | "fn" (all-ones code is NaN) | "ieee" (top exponent is Inf/NaN)
    dtype: torch.dtype | None = None  # torch storage dtype where one exists

    @property
    def bias(self) -> int:
        return 2 ** (self.exp_bits - 1) - 1

    @property
    def bits(self) -> int:
        return 1 + self.exp_bits + self.man_bits

    def code_values(self) -> torch.Tensor:
        """float64 value of every code 0 .. 2^bits - 1 (NaN for special codes)."""
        out = []
        top_e = 2**self.exp_bits - 1
        top_m = 2**self.man_bits - 1
        for code in range(2**self.bits):
            s = code >> (self.exp_bits + self.man_bits)
            e = (code >> self.man_bits) & top_e
            m = code & top_m
            if (self.special == "ieee" and e == top_e) or (self.special == "fn" and e == top_e and m == top_m):
                out.append(float("nan"))
                continue
            mag = 2.0 ** (1 - self.bias) * m / 2**self.man_bits if e == 0 else 2.0 ** (e - self.bias) * (1 + m / 2**self.man_bits)
            out.append(-mag if s else mag)
        return torch.tensor(out, dtype=torch.float64)

    @functools.cached_property
    def max(self) -> float:
        """Largest finite value; computed once, so compiled code reads a constant."""
        v = self.code_values()
        return float(v[~v.isnan()].max())


E4M3 = FloatFormat("e4m3", 4, 3, "fn", torch.float8_e4m3fn)
E5M2 = FloatFormat("e5m2", 5, 2, "ieee", torch.float8_e5m2)
E2M1 = FloatFormat("e2m1", 2, 1, "none")
E1M2 = FloatFormat("e1m2", 1, 2, "none")
E3M0 = FloatFormat("e3m0", 3, 0, "none")
for _f in (E4M3, E5M2, E2M1, E1M2, E3M0):
    _f.max  # noqa: B018 - fill the cache at import, outside any traced code
FP8_FORMATS = {f.name: f for f in (E4M3, E5M2)}
FP4_FORMATS = {f.name: f for f in (E2M1, E1M2, E3M0)}


def fp8_format(name: str) -> FloatFormat:
    if name not in FP8_FORMATS:
        raise ValueError(f"fmt must be one of {sorted(FP8_FORMATS)}, got {name!r}")
    return FP8_FORMATS[name]


def fp4_format(name: str) -> FloatFormat:
    if name not in FP4_FORMATS:
        raise ValueError(f"fmt must be one of {sorted(FP4_FORMATS)}, got {name!r}")
    return FP4_FORMATS[name]


def _absmax_scale(x: torch.Tensor, fmax: float, granularity: str) -> torch.Tensor:
    if granularity == "tensor":
        amax = x.abs().amax()
    elif granularity in ("channel", "token"):
        amax = x.abs().amax(dim=-1, keepdim=True)
    else:
        raise ValueError(f"granularity must be 'tensor', 'channel' or 'token' for FP8, got {granularity!r}")
    return absmax_scale(amax.float(), fmax)


def quantize_fp8(x: torch.Tensor, fmt: str = "e4m3", granularity: str = "channel", validate: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale so the absmax lands on the format's max, then round to nearest (torch's cast).
    Returns (fp8 tensor, float32 scale); x ≈ q · scale. `validate=False` skips the NaN/Inf check."""
    f = fp8_format(fmt)
    if validate:
        check_finite(x)
    scale = _absmax_scale(x.detach(), f.max, granularity)
    q = (x.detach().float() / scale).clamp(-f.max, f.max).to(f.dtype)
    return q, scale


def dequantize_fp8(q: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return (q.float() * scale).to(dtype)


def quantize_fp4(x: torch.Tensor, fmt: str = "e2m1", block_size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Block-wise absmax FP4 along the last dim. Returns (uint8 codes shaped like x, float32
    scales [..., n/block_size]); x ≈ value(code) · scale."""
    f = fp4_format(fmt)
    check_finite(x)
    if block_size < 1 or x.shape[-1] % block_size:
        raise ValueError(f"block_size {block_size} must be positive and divide the last dim {x.shape[-1]}")
    blocks = x.detach().float().reshape(*x.shape[:-1], -1, block_size)
    scale = (blocks.abs().amax(dim=-1, keepdim=True) / f.max).clamp_min(torch.finfo(torch.float32).tiny)
    codes = codebook.nearest(blocks / scale, f.code_values().float())
    return codes.reshape(x.shape), scale.squeeze(-1)


def dequantize_fp4(codes: torch.Tensor, scale: torch.Tensor, fmt: str = "e2m1", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    f = fp4_format(fmt)
    block_size = codes.shape[-1] // scale.shape[-1]
    values = codebook.lookup(codes, f.code_values().float())
    blocks = values.reshape(*codes.shape[:-1], -1, block_size) * scale.unsqueeze(-1)
    return blocks.reshape(codes.shape).to(dtype)
