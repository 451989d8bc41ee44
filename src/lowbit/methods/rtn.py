"""Calibration-free methods: each rounds weights to nearest in one storage format.

A method is a small config; `layer(weight, bias)` builds the quantized layer that replaces a
float linear. Arguments are checked when the config is made, so a bad one fails before any
layer is touched.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..formats import fp
from ..formats.int import GRANULARITIES, check_bits
from ..layers import FP8Linear, IntWeightLinear, KMeansLinear, NF4Linear, W8A8Linear
from ..layers.fp8 import check_activations


@dataclass(frozen=True)
class RTN:
    """Round-to-nearest integer weights, weight-only (2-8 bits)."""

    bits: int = 8
    granularity: str = "channel"  # "tensor" | "channel" | "group"
    group_size: int | None = None
    symmetric: bool = True

    def __post_init__(self):
        check_bits(self.bits)
        if self.granularity not in GRANULARITIES or self.granularity == "token":
            raise ValueError(f"granularity must be 'tensor', 'channel' or 'group' for weights, got {self.granularity!r}")
        if self.granularity == "group" and (self.group_size is None or self.group_size < 1):
            raise ValueError(f"group_size must be a positive integer with granularity='group', got {self.group_size!r}")
        if self.granularity != "group" and self.group_size is not None:
            raise ValueError(f"group_size is only used with granularity='group' (got granularity={self.granularity!r})")

    def layer(self, weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Module:
        if self.granularity == "group" and weight.shape[1] % self.group_size:
            raise ValueError(f"group_size {self.group_size} does not divide the input dim {weight.shape[1]}")
        return IntWeightLinear.from_float(weight, bias, **asdict(self))


@dataclass(frozen=True)
class NF4:
    """QLoRA's 4-bit NormalFloat, block-wise absmax, optional double quantization."""

    block_size: int = 64
    double_quant: bool = False

    def __post_init__(self):
        if self.block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {self.block_size}")

    def layer(self, weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Module:
        return NF4Linear.from_float(weight, bias, **asdict(self))


@dataclass(frozen=True)
class FP8:
    """FP8 weights (E4M3 or E5M2) with per-channel or per-tensor scales; `activations="token"`
    adds dynamic per-token E4M3 activations and an FP8 × FP8 matmul (W8A8)."""

    fmt: str = "e4m3"
    granularity: str = "channel"
    activations: str = "none"  # "none" (weight-only) | "token"

    def __post_init__(self):
        fp.fp8_format(self.fmt)
        if self.granularity not in ("tensor", "channel"):
            raise ValueError(f"granularity must be 'tensor' or 'channel', got {self.granularity!r}")
        check_activations(self.activations, self.fmt)

    def layer(self, weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Module:
        return FP8Linear.from_float(weight, bias, **asdict(self))


@dataclass(frozen=True)
class W8A8:
    """Dynamic int8 activations (per token or per tensor) × int8 weights (per channel or tensor)."""

    act_granularity: str = "token"
    weight_granularity: str = "channel"

    def __post_init__(self):
        if self.act_granularity not in ("token", "tensor"):
            raise ValueError(f"act_granularity must be 'token' or 'tensor', got {self.act_granularity!r}")
        if self.weight_granularity not in ("channel", "tensor"):
            raise ValueError(f"weight_granularity must be 'channel' or 'tensor', got {self.weight_granularity!r}")

    def layer(self, weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Module:
        return W8A8Linear.from_float(weight, bias, **asdict(self))


@dataclass(frozen=True)
class KMeans:
    """k-means weight sharing: 2^bits centroids per layer, packed indices."""

    bits: int = 4
    iters: int = 30

    def __post_init__(self):
        check_bits(self.bits)
        if self.iters < 1:
            raise ValueError(f"iters must be >= 1, got {self.iters}")

    def layer(self, weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Module:
        return KMeansLinear.from_float(weight, bias, **asdict(self))
