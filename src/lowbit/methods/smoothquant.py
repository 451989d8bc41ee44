"""SmoothQuant (Xiao et al. 2023): move the quantization difficulty of activation outliers into
the weights with a per-input-channel scale s_j = max|X_j|^α / max|W_j|^(1−α), then W8A8.

Where a LayerNorm/RMSNorm feeds the layer, 1/s is folded into the norm's gain and bias and s into
the weights of every linear it feeds, so no run-time op is added. Elsewhere (attention output,
MLP down projection) the layer divides its input by s at run time.

Levels, as in the paper (weights per tensor in all three):
  O1: activations per token, dynamic;  O2: per tensor, dynamic;  O3: per tensor, static (calibrated).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..layers import W8A8Linear
from ..models.norms import fold_input_scale, input_weight_view, observed_norm_groups
from .observers import ActivationObserver

LEVELS = {"O1": "token", "O2": "tensor", "O3": "static"}


def smoothing_scales(act_absmax: torch.Tensor, weight_absmax: torch.Tensor, alpha: float) -> torch.Tensor:
    eps = 1e-5
    return (act_absmax.clamp_min(eps).pow(alpha) / weight_absmax.clamp_min(eps).pow(1 - alpha)).clamp_min(eps)


@dataclass(frozen=True)
class SmoothQuant:
    alpha: float = 0.5
    level: str = "O1"
    weight_granularity: str = "tensor"

    needs_calibration = True

    def __post_init__(self):
        if not 0 <= self.alpha <= 1:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if self.level not in LEVELS:
            raise ValueError(f"level must be one of {sorted(LEVELS)}, got {self.level!r}")
        if self.weight_granularity not in ("tensor", "channel"):
            raise ValueError(f"weight_granularity must be 'tensor' or 'channel', got {self.weight_granularity!r}")

    def observer(self, module: nn.Module) -> ActivationObserver:
        return ActivationObserver(module)

    @torch.no_grad()
    def prepare(self, model: nn.Module, names: list[str], observers: dict[str, ActivationObserver]) -> None:
        """Fold the scales of every norm-fed group among `names` into the norm and the weights."""
        for norm, consumers, selected in observed_norm_groups(model, observers):
            modules = [model.get_submodule(c) for c in consumers]
            w_absmax = torch.stack([input_weight_view(m).abs().amax(dim=1).float() for m in modules]).amax(dim=0)
            s = smoothing_scales(observers[selected[0]].absmax, w_absmax, self.alpha)
            fold_input_scale(model, norm, consumers, s)  # unselected consumers too: they see x/s and must stay exact
            for c in selected:
                observers[c].folded = s

    def layer_from_observer(self, weight: torch.Tensor, bias: torch.Tensor | None, obs: ActivationObserver) -> nn.Module:
        folded = getattr(obs, "folded", None)
        if folded is not None:  # weight already holds W·s and the input arrives as x/s
            input_scale, act_absmax = None, obs.absmax / folded
        else:
            input_scale = smoothing_scales(obs.absmax, weight.abs().amax(dim=0).float(), self.alpha)
            act_absmax = obs.absmax / input_scale
        act_granularity = LEVELS[self.level]
        act_scale = (act_absmax.max() / 127).clamp_min(1e-8) if act_granularity == "static" else None
        return W8A8Linear.from_float(
            weight, bias, act_scale=act_scale, input_scale=input_scale,
            act_granularity=act_granularity, weight_granularity=self.weight_granularity,
        )
