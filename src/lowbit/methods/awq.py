"""AWQ (Lin et al. 2024): activation-aware weight quantization. The weights that meet large
activations matter most; scaling input channel j of W up by s_j (and the input down by s_j)
shrinks their relative rounding error. s = mean|X|^α, normalised, with α searched on a grid to
minimise the group's output error on calibration inputs; then 4-bit group-wise RTN.

Scales are searched for the linears a norm feeds (q,k,v; fc1 or gate/up) and folded into that
norm, so inference runs plain weight-only int4. Linears with no norm before them (attention
output, MLP down) take plain RTN here: folding into the preceding linear is not implemented.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..formats import int as intfmt
from ..layers import IntWeightLinear, float_weight
from ..models.norms import fold_input_scale, observed_norm_groups
from .observers import ActivationObserver


@dataclass(frozen=True)
class AWQ:
    bits: int = 4
    group_size: int = 128
    symmetric: bool = False
    grid: int = 20
    samples: int = 4096  # calibration tokens kept per layer for the search

    needs_calibration = True

    def __post_init__(self):
        intfmt.check_bits(self.bits)
        if self.group_size < 1:
            raise ValueError(f"group_size must be a positive integer, got {self.group_size}")
        if self.grid < 1:
            raise ValueError(f"grid must be >= 1, got {self.grid}")

    def observer(self, module: nn.Module) -> ActivationObserver:
        return ActivationObserver(module, keep=self.samples)

    def _fake_quant(self, w: torch.Tensor) -> torch.Tensor:
        return intfmt.quantize(w, self.bits, symmetric=self.symmetric, granularity="group", group_size=self.group_size).dequantize()

    @torch.no_grad()
    def search_scales(self, x: torch.Tensor, weights: list[torch.Tensor], abs_mean: torch.Tensor) -> torch.Tensor:
        """The s (over α in [0, 1)) that minimises Σ‖X Wᵀ − (X/s) Q(W·s)ᵀ‖² over the group."""
        refs = [x @ w.t() for w in weights]
        best_err, best_s = float("inf"), torch.ones_like(abs_mean)
        for i in range(self.grid):
            s = abs_mean.clamp_min(1e-4).pow(i / self.grid)
            s = s / (s.max() * s.min()).sqrt()
            err = sum(((x / s) @ self._fake_quant(w * s).t() - r).pow(2).mean().item() for w, r in zip(weights, refs))
            if err < best_err:
                best_err, best_s = err, s
        return best_s

    @torch.no_grad()
    def prepare(self, model: nn.Module, names: list[str], observers: dict[str, ActivationObserver]) -> None:
        for norm, consumers, selected in observed_norm_groups(model, observers):
            obs = observers[selected[0]]
            weights = [float_weight(model.get_submodule(c), c)[0].float() for c in selected]
            fold_input_scale(model, norm, consumers, self.search_scales(obs.sample, weights, obs.abs_mean))

    def layer_from_observer(self, weight: torch.Tensor, bias: torch.Tensor | None, obs: ActivationObserver) -> nn.Module:
        if weight.shape[1] % self.group_size:
            raise ValueError(f"group_size {self.group_size} does not divide the input dim {weight.shape[1]}")
        return IntWeightLinear.from_float(
            weight, bias, bits=self.bits, granularity="group", group_size=self.group_size, symmetric=self.symmetric
        )
