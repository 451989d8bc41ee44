"""What calibration records about a linear's inputs, batch by batch."""

from __future__ import annotations

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D


def in_features(module: nn.Module) -> int:
    return module.weight.shape[0] if isinstance(module, Conv1D) else module.weight.shape[1]


class ActivationObserver:
    """Per-input-channel max |x| and mean |x|, and a strided sample of input rows (for searches
    that must evaluate a layer's output error, like AWQ's)."""

    def __init__(self, module: nn.Module, keep: int = 0, stride: int = 8):
        n = in_features(module)
        device = module.weight.device
        self.absmax = torch.zeros(n, device=device)
        self._abs_sum = torch.zeros(n, device=device, dtype=torch.float64)
        self.count = 0
        self.keep, self.stride = keep, stride
        self._rows: list[torch.Tensor] = []
        self._kept = 0

    def update(self, x: torch.Tensor) -> None:
        x = x.detach().reshape(-1, x.shape[-1]).float()
        a = x.abs()
        torch.maximum(self.absmax, a.amax(dim=0), out=self.absmax)
        self._abs_sum += a.sum(dim=0, dtype=torch.float64)
        self.count += x.shape[0]
        if self._kept < self.keep:
            rows = x[:: self.stride][: self.keep - self._kept]
            self._rows.append(rows.clone())
            self._kept += rows.shape[0]

    @property
    def abs_mean(self) -> torch.Tensor:
        return (self._abs_sum / max(self.count, 1)).float()

    @property
    def sample(self) -> torch.Tensor:
        return torch.cat(self._rows) if self._rows else torch.zeros(0, self.absmax.numel(), device=self.absmax.device)
