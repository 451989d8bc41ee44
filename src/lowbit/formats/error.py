"""Error measures shared by every format, test and study."""

from __future__ import annotations

import math

import torch


def sqnr(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """Signal-to-quantization-noise ratio in dB: 10·log10(‖x‖² / ‖x − x̂‖²); inf when exact."""
    x = x.detach().double()
    noise = (x - x_hat.detach().double()).pow(2).sum().item()
    signal = x.pow(2).sum().item()
    if noise == 0.0:
        return math.inf
    return 10.0 * math.log10(signal / noise)
