"""FP8 linear: E4M3 or E5M2 weights with per-tensor or per-channel float32 scales.

`activations="none"` is weight-only: the weight-only kernels of `lowbit.ops.weight_only` (decode
GEMV converting the FP8 bytes in registers, or dequantize + cuBLAS). `activations="token"` is W8A8:
each token's activations are quantized to E4M3 at run time (absmax per row, one fused pass on
CUDA), then an FP8 × FP8 matmul with both scales in the epilogue (`torch._scaled_mm` row-wise on an
FP8 GPU); E4M3 weights only. At decode and for a few tokens on CUDA (≤ VALUES_MAX_M["fp8"]) W8A8 takes the
weight-only kernels too: faster there, and exact in x.
"""

from __future__ import annotations

import torch

from .. import ops
from ..formats import fp
from ..ops.weight_only import VALUES_MAX_M, weight_only_linear
from .base import QuantLinear

ACTIVATIONS = ("none", "token")


class FP8Linear(QuantLinear):
    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool,
        *,
        fmt: str = "e4m3",
        granularity: str = "channel",
        activations: str = "none",
        bias_dtype: torch.dtype = torch.float32,
    ):
        super().__init__(in_features, out_features, bias, bias_dtype)
        f = fp.fp8_format(fmt)
        if granularity not in ("tensor", "channel"):
            raise ValueError(f"granularity must be 'tensor' or 'channel' for FP8 weights, got {granularity!r}")
        check_activations(activations, fmt)
        self.fmt, self.granularity, self.activations = fmt, granularity, activations
        self.register_buffer("qweight", torch.zeros(out_features, in_features, dtype=f.dtype))
        self.register_buffer("scale", torch.ones(() if granularity == "tensor" else (out_features, 1)))

    @classmethod
    def from_float(cls, weight: torch.Tensor, bias: torch.Tensor | None, **cfg) -> "FP8Linear":
        layer = cls._shell(weight, bias, **cfg)
        qweight, layer.scale = fp.quantize_fp8(weight, layer.fmt, layer.granularity)
        layer.qweight = qweight.contiguous()  # row-major (a Conv1D weight arrives transposed)
        return layer

    def dequantize_weight(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return fp.dequantize_fp8(self.qweight, self.scale, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x2 = x.reshape(-1, self.in_features)
        if self.activations == "none" or (x.is_cuda and x2.shape[0] <= VALUES_MAX_M["fp8"]):
            # weight-only (for W8A8 too at a few tokens on CUDA: the kernel reads the FP8 weight once and
            # is exact in x, faster than quantizing the tokens and a matmul)
            scale = self.scale.reshape(-1, 1).expand(self.out_features, 1)  # per tensor: one scale read for every row
            return weight_only_linear(x, self.qweight, scale, None, 8, self.in_features, None, self.bias)
        codes, x_scale = ops.quantize_rows_fp8(x2)
        out = ops.scaled_fp8_mm(codes, self.qweight, x_scale, self.scale, self.bias, x.dtype)
        return out.reshape(*x.shape[:-1], self.out_features)

    def config(self) -> dict:
        return dict(fmt=self.fmt, granularity=self.granularity, activations=self.activations)


def check_activations(activations: str, fmt: str) -> None:
    if activations not in ACTIVATIONS:
        raise ValueError(f"activations must be one of {ACTIVATIONS}, got {activations!r}")
    if activations == "token" and fmt != "e4m3":
        raise ValueError(f"FP8 activations (activations='token') need E4M3 weights, got fmt={fmt!r}")
