"""Weight-only integer linear (2-8 bits; per-tensor, per-channel or group-wise; absmax or
zero-point). Codes are stored unsigned and bit-packed along the input dim. RTN and GPTQ both
store here; GPTQ with act-order adds `g_idx`, the group of each input column."""

from __future__ import annotations

import torch

from ..formats import int as intfmt
from ..formats.packing import pack, packed_length, unpack
from ..ops.weight_only import weight_only_linear
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
        act_order: bool = False,
        bias_dtype: torch.dtype = torch.float32,
    ):
        super().__init__(in_features, out_features, bias, bias_dtype)
        intfmt.check_bits(bits)
        if act_order and granularity != "group":
            raise ValueError("act_order (a g_idx per input column) needs granularity='group'")
        self.bits, self.granularity, self.group_size, self.symmetric = bits, granularity, group_size, symmetric
        self.act_order = act_order
        sshape = intfmt.scale_shape(torch.Size((out_features, in_features)), granularity, group_size)
        self.register_buffer("qweight", torch.zeros(out_features, packed_length(in_features, bits), dtype=torch.uint8))
        self.register_buffer("scale", torch.ones(sshape))
        self.register_buffer("zero", None if symmetric else torch.zeros(sshape, dtype=torch.uint8))
        self.register_buffer("g_idx", torch.arange(in_features, dtype=torch.int32) // group_size if act_order else None)

    @classmethod
    def from_float(cls, weight: torch.Tensor, bias: torch.Tensor | None, **cfg) -> "IntWeightLinear":
        layer = cls._shell(weight, bias, **cfg)
        q = intfmt.quantize(weight, layer.bits, symmetric=layer.symmetric, granularity=layer.granularity, group_size=layer.group_size)
        return layer._fill(q.codes, q.scale, q.zero)

    @classmethod
    def from_codes(
        cls,
        codes: torch.Tensor,
        scale: torch.Tensor,
        zero: torch.Tensor | None,
        bias: torch.Tensor | None,
        g_idx: torch.Tensor | None = None,
        **cfg,
    ) -> "IntWeightLinear":
        """A layer from codes chosen elsewhere (GPTQ, AWQ): signed codes when symmetric, else unsigned."""
        layer = cls._shell(codes, bias, act_order=g_idx is not None, **cfg)
        if g_idx is not None:
            layer.g_idx = g_idx.to(torch.int32)
        return layer._fill(codes, scale.float(), None if zero is None else zero.to(torch.uint8))

    def _fill(self, codes: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor | None) -> "IntWeightLinear":
        # row-major whatever the codes' layout (a Conv1D weight arrives transposed): the kernels' layout, and no copy a call
        self.qweight = pack(_to_unsigned(codes, self.bits, self.symmetric), self.bits).contiguous()
        self.scale, self.zero = scale.contiguous(), None if zero is None else zero.contiguous()
        return self

    def codes(self) -> torch.Tensor:
        """Signed (symmetric) or unsigned (zero-point) integer codes [out, in], as int16."""
        u = unpack(self.qweight, self.bits, self.in_features).to(torch.int16)
        return u - 2 ** (self.bits - 1) if self.symmetric else u

    def dequantize_weight(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return intfmt.dequantize(self.codes(), self.scale, self.zero, self.granularity, self.group_size, dtype, self.g_idx)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bits in (4, 8) and self.granularity in ("group", "channel"):  # kernels on CUDA, the same math elsewhere
            group_size = self.group_size if self.granularity == "group" else self.in_features
            return weight_only_linear(x, self.qweight, self.scale, self.zero, self.bits, group_size, None, self.bias, self.g_idx)
        return super().forward(x)

    def config(self) -> dict:
        return dict(bits=self.bits, granularity=self.granularity, group_size=self.group_size, symmetric=self.symmetric, act_order=self.act_order)


def _to_unsigned(codes: torch.Tensor, bits: int, symmetric: bool) -> torch.Tensor:
    # symmetric codes live in [-(2^(b-1)-1), 2^(b-1)-1]; shift by 2^(b-1) to pack them unsigned
    return (codes.to(torch.int16) + 2 ** (bits - 1)).to(torch.uint8) if symmetric else codes.to(torch.uint8)

