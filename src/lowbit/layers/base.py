"""What every quantized linear shares: the weight of the float layer it replaces, and the
dequantize-then-matmul forward that is the reference for every faster kernel."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers.pytorch_utils import Conv1D

from ..formats.int import check_finite

QUANTIZABLE = (nn.Linear, Conv1D)


def float_weight(module: nn.Module, name: str = "module") -> tuple[torch.Tensor, torch.Tensor | None]:
    """(weight [out, in], bias) of an nn.Linear or a GPT-2 Conv1D, whose weight is stored [in, out]."""
    if isinstance(module, nn.Linear):
        weight = module.weight
    elif isinstance(module, Conv1D):
        weight = module.weight.t()
    else:
        raise ValueError(f"{name} is a {type(module).__name__}; lowbit quantizes nn.Linear and transformers Conv1D")
    check_finite(weight, f"weight of {name!r}")
    bias = None if module.bias is None else module.bias.detach().clone()
    return weight.detach(), bias


def replace_module(model: nn.Module, name: str, module: nn.Module) -> None:
    """Put `module` at dotted path `name` in `model`."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


class QuantLinear(nn.Module):
    """A linear layer whose weight is stored quantized. Subclasses hold buffers and define
    `dequantize_weight`; `config()` returns the constructor arguments that save/load need."""

    def __init__(self, in_features: int, out_features: int, bias: bool, bias_dtype: torch.dtype = torch.float32):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.register_buffer("bias", torch.zeros(out_features, dtype=bias_dtype) if bias else None)

    def config(self) -> dict:
        raise NotImplementedError

    def dequantize_weight(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, self.dequantize_weight(x.dtype), bias)

    @classmethod
    def _shell(cls, weight: torch.Tensor, bias: torch.Tensor | None, **cfg) -> "QuantLinear":
        """A layer of weight's shape holding `bias`, its quantized buffers still to be filled."""
        bias_dtype = torch.float32 if bias is None else bias.dtype
        layer = cls(weight.shape[1], weight.shape[0], bias is not None, bias_dtype=bias_dtype, **cfg)
        if bias is not None:
            layer.bias = bias.detach().clone()
        return layer

    def extra_repr(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.config().items())
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, {args}"
