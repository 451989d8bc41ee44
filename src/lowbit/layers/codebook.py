"""Codebook (k-means) weight-only linear: packed indices into a per-layer float codebook."""

from __future__ import annotations

import torch

from ..formats import codebook
from ..formats.int import check_bits
from ..formats.packing import pack, packed_length, unpack
from .base import QuantLinear


class KMeansLinear(QuantLinear):
    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool,
        *,
        bits: int = 4,
        iters: int = 30,
        bias_dtype: torch.dtype = torch.float32,
    ):
        super().__init__(in_features, out_features, bias, bias_dtype)
        check_bits(bits)
        self.bits, self.iters = bits, iters
        self.register_buffer("qweight", torch.zeros(out_features, packed_length(in_features, bits), dtype=torch.uint8))
        self.register_buffer("codebook", torch.zeros(2**bits))

    @classmethod
    def from_float(cls, weight: torch.Tensor, bias: torch.Tensor | None, **cfg) -> "KMeansLinear":
        layer = cls._shell(weight, bias, **cfg)
        codes, layer.codebook = codebook.kmeans(weight, layer.bits, layer.iters)
        layer.qweight = pack(codes, layer.bits)
        return layer

    def dequantize_weight(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return codebook.lookup(unpack(self.qweight, self.bits, self.in_features), self.codebook, dtype)

    def config(self) -> dict:
        return dict(bits=self.bits, iters=self.iters)
