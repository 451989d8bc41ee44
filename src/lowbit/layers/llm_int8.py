"""LLM.int8() (Dettmers et al. 2022): vector-wise int8 matmul for ordinary input features, and a
16-bit matmul for the outlier features — input columns where any |x| exceeds the threshold.

As in bitsandbytes, only int8 weights are stored; the outlier columns of W are dequantized from
them, so memory is that of int8 and only the activations' outliers stay in high precision.
"""

from __future__ import annotations

import torch

from ..formats import int as intfmt
from .base import QuantLinear


class LLMInt8Linear(QuantLinear):
    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool,
        *,
        threshold: float = 6.0,
        bias_dtype: torch.dtype = torch.float32,
    ):
        super().__init__(in_features, out_features, bias, bias_dtype)
        if not threshold > 0:
            raise ValueError(f"threshold must be > 0, got {threshold!r}")
        self.threshold = float(threshold)
        self.register_buffer("qweight", torch.zeros(out_features, in_features, dtype=torch.int8))
        self.register_buffer("scale", torch.ones(out_features, 1))

    @classmethod
    def from_float(cls, weight: torch.Tensor, bias: torch.Tensor | None, **cfg) -> "LLMInt8Linear":
        layer = cls._shell(weight, bias, **cfg)
        q = intfmt.quantize(weight, 8, granularity="channel")
        layer.qweight, layer.scale = q.codes, q.scale
        return layer

    def dequantize_weight(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return intfmt.dequantize(self.qweight, self.scale, None, "channel", dtype=dtype)

    def outlier_columns(self, x2: torch.Tensor) -> torch.Tensor:
        return (x2.abs() > self.threshold).any(dim=0).nonzero().flatten()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x2 = x.reshape(-1, self.in_features)
        cols = self.outlier_columns(x2)
        regular = x2.index_fill(1, cols, 0) if cols.numel() else x2
        xq = intfmt.quantize(regular, 8, granularity="token")
        out = intfmt.int8_matmul(xq.codes, self.qweight).float() * xq.scale.reshape(-1, 1) * self.scale.reshape(1, -1)
        if cols.numel():
            w_out = self.qweight.index_select(1, cols).to(x.dtype) * self.scale.to(x.dtype)
            out = out + (x2.index_select(1, cols) @ w_out.t()).float()
        if self.bias is not None:
            out = out + self.bias.float()
        return out.to(x.dtype).reshape(*x.shape[:-1], self.out_features)

    def config(self) -> dict:
        return dict(threshold=self.threshold)
