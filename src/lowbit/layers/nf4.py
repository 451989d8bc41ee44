"""NF4 weight-only linear (QLoRA's storage): packed 4-bit codes over blocks of the flattened
weight, float32 block absmax or its double-quantized 8-bit codes."""

from __future__ import annotations

import torch

from ..formats import nf4
from ..formats.packing import pack, unpack
from ..ops.weight_only import code_table, rms_norm, weight_only_linear
from .base import QuantLinear


class NF4Linear(QuantLinear):
    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool,
        *,
        block_size: int = 64,
        double_quant: bool = False,
        bias_dtype: torch.dtype = torch.float32,
    ):
        super().__init__(in_features, out_features, bias, bias_dtype)
        n = in_features * out_features
        if block_size < 1 or n % block_size:
            raise ValueError(f"block_size {block_size} must divide the weight's {n} elements")
        self.block_size, self.double_quant = block_size, double_quant
        blocks = n // block_size
        self.register_buffer("qweight", torch.zeros(n // 2, dtype=torch.uint8))
        if double_quant:
            self.register_buffer("absmax", None)
            self.register_buffer("absmax_codes", torch.zeros(blocks, dtype=torch.uint8))
            self.register_buffer("absmax_scale", torch.ones(-(-blocks // nf4.ABSMAX_BLOCK)))
            self.register_buffer("absmax_offset", torch.zeros(()))
        else:
            self.register_buffer("absmax", torch.ones(blocks))

    @classmethod
    def from_float(cls, weight: torch.Tensor, bias: torch.Tensor | None, **cfg) -> "NF4Linear":
        layer = cls._shell(weight, bias, **cfg)
        q = nf4.quantize(weight, layer.block_size, layer.double_quant)
        layer.qweight = pack(q.codes.reshape(-1), 4)
        if layer.double_quant:
            layer.absmax_codes, layer.absmax_scale, layer.absmax_offset = q.absmax_codes, q.absmax_scale, q.absmax_offset
        else:
            layer.absmax = q.absmax
        return layer

    def block_absmax(self) -> torch.Tensor:
        if not self.double_quant:
            return self.absmax
        return nf4.dequantize_absmax(self.absmax_codes, self.absmax_scale, self.absmax_offset)

    def dequantize_weight(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        codes = unpack(self.qweight, 4, self.in_features * self.out_features)
        w = nf4.dequantize(codes, self.block_absmax(), self.block_size, dtype)
        return w.reshape(self.out_features, self.in_features)

    def forward(self, x: torch.Tensor, norm: tuple[torch.Tensor, float] | None = None) -> torch.Tensor:
        """`norm` (gain, eps): x is the input of that RMSNorm, applied inside the word GEMV (as `IntWeightLinear`'s)."""
        k, n, bs = self.in_features, self.out_features, self.block_size
        if k % bs or k % 2:  # blocks (or bytes) straddle rows: dequantize the flat weight
            return super().forward(x if norm is None else rms_norm(x, *norm))
        # blocks within rows: the storage is a [N, K/2] packed weight with a [N, K/bs] scale grid
        absmax = self.block_absmax().reshape(n, k // bs)
        return weight_only_linear(x, self.qweight.view(n, k // 2), absmax, None, 4, bs, code_table("nf4", x.device), self.bias,
                                  norm=norm)

    def config(self) -> dict:
        return dict(block_size=self.block_size, double_quant=self.double_quant)
