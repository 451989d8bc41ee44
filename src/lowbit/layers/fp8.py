"""FP8 weight-only linear: E4M3 or E5M2 weights with per-tensor or per-channel float32 scales."""

from __future__ import annotations

import torch

from ..formats import fp
from .base import QuantLinear


class FP8Linear(QuantLinear):
    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool,
        *,
        fmt: str = "e4m3",
        granularity: str = "channel",
        bias_dtype: torch.dtype = torch.float32,
    ):
        super().__init__(in_features, out_features, bias, bias_dtype)
        f = fp.fp8_format(fmt)
        if granularity not in ("tensor", "channel"):
            raise ValueError(f"granularity must be 'tensor' or 'channel' for FP8 weights, got {granularity!r}")
        self.fmt, self.granularity = fmt, granularity
        self.register_buffer("qweight", torch.zeros(out_features, in_features, dtype=f.dtype))
        self.register_buffer("scale", torch.ones(() if granularity == "tensor" else (out_features, 1)))

    @classmethod
    def from_float(cls, weight: torch.Tensor, bias: torch.Tensor | None, **cfg) -> "FP8Linear":
        layer = cls._shell(weight, bias, **cfg)
        layer.qweight, layer.scale = fp.quantize_fp8(weight, layer.fmt, layer.granularity)
        return layer

    def dequantize_weight(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return fp.dequantize_fp8(self.qweight, self.scale, dtype)

    def config(self) -> dict:
        return dict(fmt=self.fmt, granularity=self.granularity)
