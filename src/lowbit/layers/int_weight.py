"""Weight-only integer linear (2-8 bits; per-tensor, per-channel or group-wise; absmax or
zero-point). Codes are stored unsigned and bit-packed along the input dim."""

from __future__ import annotations

import torch

from ..formats import int as intfmt
from ..formats.packing import pack, packed_length, unpack
from .base import QuantLinear


class IntWeightLinear(QuantLinear):
    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool,
        *,
        bits: int = 8,
        granularity: str = "channel",
        group_size: int | None = None,
        symmetric: bool = True,
        bias_dtype: torch.dtype = torch.float32,
    ):
        super().__init__(in_features, out_features, bias, bias_dtype)
        intfmt.check_bits(bits)
        self.bits, self.granularity, self.group_size, self.symmetric = bits, granularity, group_size, symmetric
        sshape = intfmt.scale_shape(torch.Size((out_features, in_features)), granularity, group_size)
        self.register_buffer("qweight", torch.zeros(out_features, packed_length(in_features, bits), dtype=torch.uint8))
        self.register_buffer("scale", torch.ones(sshape))
        self.register_buffer("zero", None if symmetric else torch.zeros(sshape, dtype=torch.uint8))

    @classmethod
    def from_float(cls, weight: torch.Tensor, bias: torch.Tensor | None, **cfg) -> "IntWeightLinear":
        layer = cls._shell(weight, bias, **cfg)
        q = intfmt.quantize(weight, layer.bits, symmetric=layer.symmetric, granularity=layer.granularity, group_size=layer.group_size)
        layer.qweight = pack(_to_unsigned(q.codes, layer.bits, layer.symmetric), layer.bits)
        layer.scale, layer.zero = q.scale, q.zero
        return layer

    def codes(self) -> torch.Tensor:
        """Signed (symmetric) or unsigned (zero-point) integer codes [out, in], as int16."""
        u = unpack(self.qweight, self.bits, self.in_features).to(torch.int16)
        return u - 2 ** (self.bits - 1) if self.symmetric else u

    def dequantize_weight(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return intfmt.dequantize(self.codes(), self.scale, self.zero, self.granularity, self.group_size, dtype)

    def config(self) -> dict:
        return dict(bits=self.bits, granularity=self.granularity, group_size=self.group_size, symmetric=self.symmetric)


def _to_unsigned(codes: torch.Tensor, bits: int, symmetric: bool) -> torch.Tensor:
    # symmetric codes live in [-(2^(b-1)-1), 2^(b-1)-1]; shift by 2^(b-1) to pack them unsigned
    return (codes.to(torch.int16) + 2 ** (bits - 1)).to(torch.uint8) if symmetric else codes

