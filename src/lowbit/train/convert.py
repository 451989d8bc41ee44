"""`lowbit.train.convert(model, precision, select)`: swap the selected linears for training linears
whose matmuls follow the precision's recipe. lm_head is excluded by default: its matmul is the
most sensitive one and the smallest share of the FLOPs in large models."""

from __future__ import annotations

import torch
from torch import nn

from ..layers import float_weight, replace_module
from ..select import select_modules
from .int8_weight import Int8WeightLinear
from .linear import PRECISIONS, QuantTrainLinear, Recipe, recipe_for
from .mlp import fuse_mlps

PRECISION_NAMES = (*PRECISIONS, "int8-weight")


def convert(model: nn.Module, precision: str = "int8", select: str = "no-lm_head", stochastic_rounding: bool = False,
            fuse_mlp: bool = False) -> nn.Module:
    """Replace the selected nn.Linear / GPT-2 Conv1D layers in place and return the model: training
    linears for the matmul precisions (weights copied as [out, in] parameters), or int8-weight
    layers (weights stored as int8 only; step them with `Int8WeightAdamW`). With `fuse_mlp`, each gated SiLU
    MLP whose three linears run on codes in one format becomes one `QuantTrainMLP` (same parameters): off by
    default, as it made the llama2-1b step slower (H200, session 14: int8 1.20x → 1.08x bf16, see `train.mlp`)."""
    if precision not in PRECISION_NAMES:
        raise ValueError(f"unknown precision {precision!r}; valid: {', '.join(PRECISION_NAMES)}")
    recipe = None if precision == "int8-weight" else recipe_for(precision, stochastic_rounding)
    for name in select_modules(model, select):
        weight, bias = float_weight(model.get_submodule(name), name)
        layer = Int8WeightLinear.from_float(weight, bias) if recipe is None else _train_linear(weight, bias, recipe)
        replace_module(model, name, layer)
    if fuse_mlp and recipe is not None:
        fuse_mlps(model)
    return model


def _train_linear(weight: torch.Tensor, bias: torch.Tensor | None, recipe: Recipe) -> QuantTrainLinear:
    layer = QuantTrainLinear(weight.shape[1], weight.shape[0], bias is not None, recipe=recipe, device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer
