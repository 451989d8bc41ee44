"""`lowbit.train.convert(model, precision, select)`: swap the selected linears for training linears
whose matmuls follow the precision's recipe. lm_head is excluded by default: its matmul is the
most sensitive one and the smallest share of the FLOPs in large models."""

from __future__ import annotations

import torch
from torch import nn

from ..layers import float_weight, replace_module
from ..select import select_modules
from .linear import QuantTrainLinear, recipe_for


def convert(model: nn.Module, precision: str = "int8", select: str = "no-lm_head", stochastic_rounding: bool = False) -> nn.Module:
    """Replace the selected nn.Linear / GPT-2 Conv1D layers in place (weights copied, as [out, in]
    parameters) and return the model."""
    recipe = recipe_for(precision, stochastic_rounding)
    for name in select_modules(model, select):
        module = model.get_submodule(name)
        weight, bias = float_weight(module, name)
        layer = QuantTrainLinear(weight.shape[1], weight.shape[0], bias is not None, recipe=recipe, device=weight.device, dtype=weight.dtype)
        with torch.no_grad():
            layer.weight.copy_(weight)
            if bias is not None:
                layer.bias.copy_(bias)
        replace_module(model, name, layer)
    return model
