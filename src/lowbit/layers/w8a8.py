"""Dynamic W8A8: int8 weights per output channel, activations quantized per token (or per
tensor) at run time, an int8 × int8 → int32 matmul, then both scales in the epilogue."""

from __future__ import annotations

import torch

from ..formats import int as intfmt
from .base import QuantLinear


class W8A8Linear(QuantLinear):
    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool,
        *,
        act_granularity: str = "token",
        bias_dtype: torch.dtype = torch.float32,
    ):
        super().__init__(in_features, out_features, bias, bias_dtype)
        if act_granularity not in ("token", "tensor"):
            raise ValueError(f"act_granularity must be 'token' or 'tensor', got {act_granularity!r}")
        self.act_granularity = act_granularity
        self.register_buffer("qweight", torch.zeros(out_features, in_features, dtype=torch.int8))
        self.register_buffer("scale", torch.ones(out_features, 1))

    @classmethod
    def from_float(cls, weight: torch.Tensor, bias: torch.Tensor | None, **cfg) -> "W8A8Linear":
        layer = cls._shell(weight, bias, **cfg)
        q = intfmt.quantize(weight, 8, granularity="channel")
        layer.qweight, layer.scale = q.codes, q.scale
        return layer

    def dequantize_weight(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return intfmt.dequantize(self.qweight, self.scale, None, "channel", dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x2 = x.reshape(-1, self.in_features)
        xq = intfmt.quantize(x2, 8, granularity=self.act_granularity)
        acc = intfmt.int8_matmul(xq.codes, self.qweight)
        out = acc.float() * xq.scale.reshape(-1, 1) * self.scale.reshape(1, -1)
        if self.bias is not None:
            out = out + self.bias.float()
        return out.to(x.dtype).reshape(*x.shape[:-1], self.out_features)

    def config(self) -> dict:
        return dict(act_granularity=self.act_granularity)
