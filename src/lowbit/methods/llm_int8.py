"""LLM.int8() (Dettmers et al. 2022): the method config, and its calibration view — per layer,
how many input features exceed the outlier threshold, and on how many tokens."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..layers import QUANTIZABLE, LLMInt8Linear
from .observers import ActivationObserver


@dataclass(frozen=True)
class LLMInt8:
    """LLM.int8(): vector-wise int8 with a 16-bit path for outlier features above `threshold`.

    keep_outlier_weights=True (needs calibration): input features that exceed the threshold on the
    calibration data keep their weight columns in 16-bit, as in the paper; otherwise outlier columns
    are dequantized from int8, as in bitsandbytes."""

    threshold: float = 6.0
    keep_outlier_weights: bool = False

    def __post_init__(self):
        if not self.threshold > 0:
            raise ValueError(f"threshold must be > 0, got {self.threshold!r}")

    @property
    def needs_calibration(self) -> bool:
        return self.keep_outlier_weights

    def layer(self, weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Module:
        return LLMInt8Linear.from_float(weight, bias, threshold=self.threshold)

    def observer(self, module: nn.Module) -> ActivationObserver:
        return ActivationObserver(module)

    def layer_from_observer(self, weight: torch.Tensor, bias: torch.Tensor | None, obs: ActivationObserver) -> nn.Module:
        cols = (obs.absmax > self.threshold).nonzero().flatten()
        return LLMInt8Linear.from_float(weight, bias, outlier_cols=cols if cols.numel() else None, threshold=self.threshold)


@torch.no_grad()
def outlier_report(model: nn.Module, calibration: torch.Tensor, threshold: float = 6.0, batch_size: int = 8) -> list[dict]:
    """One row per linear: name, features (input features with any |x| > threshold), tokens
    (tokens with any feature above it), total_tokens, max_abs (largest |x| seen)."""
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0, got {threshold!r}")
    device = next(model.parameters()).device
    stats: dict[str, dict] = {}
    handles = []
    for name, module in model.named_modules():
        if not isinstance(module, QUANTIZABLE):
            continue
        entry = stats[name] = {"mask": None, "tokens": 0, "total_tokens": 0, "max_abs": 0.0}

        def hook(mod, args, out, entry=entry):
            x = args[0].reshape(-1, args[0].shape[-1]).abs()
            over = x > threshold
            cols = over.any(dim=0)
            entry["mask"] = cols if entry["mask"] is None else entry["mask"] | cols
            entry["tokens"] += int(over.any(dim=1).sum())
            entry["total_tokens"] += x.shape[0]
            entry["max_abs"] = max(entry["max_abs"], float(x.max()))

        handles.append(module.register_forward_hook(hook))
    try:
        for i in range(0, len(calibration), batch_size):
            model(calibration[i : i + batch_size].to(device))
    finally:
        for h in handles:
            h.remove()
    return [
        {"name": name, "features": int(e["mask"].sum()) if e["mask"] is not None else 0,
         "tokens": e["tokens"], "total_tokens": e["total_tokens"], "max_abs": e["max_abs"]}
        for name, e in stats.items()
    ]
