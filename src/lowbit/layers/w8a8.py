"""W8A8: int8 weights (per output channel or per tensor) × int8 activations, an int8 × int8 →
int32 matmul, then both scales in the epilogue. Activations are quantized at run time per token
or per tensor ("dynamic"), or with one scale fixed at calibration ("static", SmoothQuant O3).
An optional per-input-channel `input_scale` divides x first: SmoothQuant's smoothing where no
norm precedes the layer to fold it into.

At decode and for a few tokens on CUDA (≤ VALUES_MAX_M["w8a8"]) the layer skips quantizing x and runs the
weight-only kernels (GEMV, swapped MMA) on its int8 weight instead: reading the weight once is all the
time there, and x stays exact."""

from __future__ import annotations

import torch

from .. import ops
from ..formats import int as intfmt
from ..ops.weight_only import VALUES_MAX_M, weight_only_linear
from .base import QuantLinear

ACT_GRANULARITIES = ("token", "tensor", "static")


class W8A8Linear(QuantLinear):
    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool,
        *,
        act_granularity: str = "token",
        weight_granularity: str = "channel",
        input_scale: bool = False,
        bias_dtype: torch.dtype = torch.float32,
    ):
        super().__init__(in_features, out_features, bias, bias_dtype)
        if act_granularity not in ACT_GRANULARITIES:
            raise ValueError(f"act_granularity must be one of {ACT_GRANULARITIES}, got {act_granularity!r}")
        if weight_granularity not in ("channel", "tensor"):
            raise ValueError(f"weight_granularity must be 'channel' or 'tensor', got {weight_granularity!r}")
        self.act_granularity, self.weight_granularity = act_granularity, weight_granularity
        self.register_buffer("qweight", torch.zeros(out_features, in_features, dtype=torch.int8))
        self.register_buffer("scale", torch.ones(out_features, 1) if weight_granularity == "channel" else torch.ones(()))
        self.register_buffer("act_scale", torch.ones(()) if act_granularity == "static" else None)
        self.register_buffer("input_scale", torch.ones(in_features) if input_scale else None)

    @classmethod
    def from_float(
        cls,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        act_scale: torch.Tensor | None = None,
        input_scale: torch.Tensor | None = None,
        **cfg,
    ) -> "W8A8Linear":
        """`input_scale` s: the layer computes (x / s) @ (W·s)ᵀ. `act_scale`: the static scale of x / s."""
        layer = cls._shell(weight, bias, input_scale=input_scale is not None, **cfg)
        if layer.act_granularity == "static" and act_scale is None:
            raise ValueError("act_granularity='static' needs act_scale from calibration")
        if input_scale is not None:
            layer.input_scale = input_scale.float().clone()
            weight = weight.float() * layer.input_scale
        q = intfmt.quantize(weight, 8, granularity=layer.weight_granularity)
        layer.qweight, layer.scale = q.codes.contiguous(), q.scale  # row-major (a Conv1D weight arrives transposed)
        if act_scale is not None:
            layer.act_scale = act_scale.float().reshape(())
        return layer

    def dequantize_weight(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        w = intfmt.dequantize(self.qweight, self.scale, None, "channel")
        if self.input_scale is not None:
            w = w / self.input_scale
        return w.to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x2 = x.reshape(-1, self.in_features)
        if self.input_scale is not None:
            x2 = x2 / self.input_scale.to(x2.dtype)
        rows = x2.shape[0]
        if x2.is_cuda and rows <= VALUES_MAX_M["w8a8"]:  # decode and a few tokens: weight-only (see the module doc)
            w_scale = self.scale.reshape(-1, 1).expand(self.out_features, 1)
            out = weight_only_linear(x2, self.qweight, w_scale, None, 8, self.in_features, None, self.bias)
            return out.reshape(*x.shape[:-1], self.out_features)
        if self.act_granularity == "token":
            codes, x_scale = ops.quantize_rows(x2)  # one fused pass on CUDA
        elif self.act_granularity == "static":
            codes = intfmt.quantize_with(x2.float(), self.act_scale, None, 8, True).to(torch.int8)
            x_scale = self.act_scale.expand(rows)
        else:
            xq = intfmt.quantize(x2, 8, granularity="tensor", validate=False)
            codes, x_scale = xq.codes, xq.scale.expand(rows)
        w_scale = self.scale.reshape(-1).expand(self.out_features)
        bias = None if self.bias is None else self.bias.float()
        out = ops.scaled_int8_mm(codes, self.qweight.t(), x_scale.float(), w_scale.float(), bias, x.dtype)
        return out.reshape(*x.shape[:-1], self.out_features)

    def config(self) -> dict:
        return dict(act_granularity=self.act_granularity, weight_granularity=self.weight_granularity, input_scale=self.input_scale is not None)
