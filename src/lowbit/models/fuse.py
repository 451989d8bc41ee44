"""One matmul for the projections that read the same input: q, k, v → `qkv_proj`; gate, up → `gate_up_proj`.

    from lowbit.models.fuse import fuse_projections
    fuse_projections(model)        # before quantizing: the fused linears are quantized like any other

At one token a decoder layer's linears are GEMVs bound by reading their weights, and a small GEMV reads them slower
than a large one: its launch, first loads and tail are a larger share. gpt-fast and vLLM fuse these projections for
that reason. Quantization per output row or row group (RTN, GPTQ, NF4, FP8, W8A8's per-channel weights) gives a
fused weight the codes and scales of its parts, so fusing first changes the time, not the answer.

The module keeps its forward: its class becomes a subclass whose forward runs the fused linear on the input first, and
the old projections become `Columns` of that output, so transformers' own attention and MLP code runs unchanged.
"""

from __future__ import annotations

import functools
import inspect

import torch
from torch import nn

# the projections of one input, fused into the first name
GROUPS = {"qkv_proj": ("q_proj", "k_proj", "v_proj"), "gate_up_proj": ("gate_proj", "up_proj")}
# a forward that takes one of these may feed k and v another input than q's (cross-attention): left unfused
OTHER_INPUTS = {"key_value_states", "encoder_hidden_states", "cross_attention_states"}


class Columns(nn.Module):
    """A fused projection's stand-in: columns [start, stop) of the fused output (a view; no copy)."""

    def __init__(self, start: int, stop: int):
        super().__init__()
        self.start, self.stop = start, stop

    def forward(self, fused: torch.Tensor) -> torch.Tensor:
        return fused[..., self.start:self.stop]

    def extra_repr(self) -> str:
        return f"columns {self.start}:{self.stop} of the fused output"


@functools.cache
def _fused_class(cls: type, name: str) -> type:
    """cls whose forward first replaces its input x (the first argument, or `hidden_states`) by `name`(x)."""

    def forward(self, *args, **kwargs):
        if args:
            args = (getattr(self, name)(args[0]), *args[1:])
        elif "hidden_states" in kwargs:
            kwargs["hidden_states"] = getattr(self, name)(kwargs["hidden_states"])
        else:
            raise TypeError(f"Fused{cls.__name__} takes its input first or as hidden_states=, got {', '.join(kwargs)}")
        return cls.forward(self, *args, **kwargs)

    return type(f"Fused{cls.__name__}", (cls,), {"forward": forward, "__doc__": f"{cls.__name__} with {name} fused."})


def _fuse(module: nn.Module, name: str, parts: tuple[str, ...]) -> None:
    linears = [getattr(module, p) for p in parts]
    first = linears[0]
    if any(type(lin) is not nn.Linear for lin in linears):
        kinds = ", ".join(f"{p}: {type(lin).__name__}" for p, lin in zip(parts, linears))
        raise ValueError(f"fuse_projections takes float nn.Linear projections (fuse before quantizing); "
                         f"{type(module).__name__} has {kinds}")
    if any(lin.in_features != first.in_features or (lin.bias is None) != (first.bias is None)
           or lin.weight.dtype != first.weight.dtype or lin.weight.device != first.weight.device for lin in linears):
        raise ValueError(f"{type(module).__name__}'s {', '.join(parts)} differ in input size, bias, dtype or device: "
                         "they cannot be one matmul")
    fused = nn.Linear(first.in_features, sum(lin.out_features for lin in linears), bias=first.bias is not None,
                      device="meta")
    with torch.no_grad():
        fused.weight = nn.Parameter(torch.cat([lin.weight for lin in linears]), requires_grad=first.weight.requires_grad)
        if first.bias is not None:
            fused.bias = nn.Parameter(torch.cat([lin.bias for lin in linears]), requires_grad=first.bias.requires_grad)
    start = 0
    for part, lin in zip(parts, linears):
        setattr(module, part, Columns(start, start + lin.out_features))
        start += lin.out_features
    module.add_module(name, fused)
    module.__class__ = _fused_class(type(module), name)


def fuse_projections(model: nn.Module) -> int:
    """Fuse, in place, every module's q/k/v and gate/up projections (`GROUPS`) into one nn.Linear each; returns how
    many were fused. Left as they are: modules fused before, and those whose forward can take a second input
    (`OTHER_INPUTS`: cross-attention, where k and v read another tensor than q). Run it on the float model:
    quantized projections raise a ValueError."""
    count = 0
    for module in list(model.modules()):
        for name, parts in GROUPS.items():
            found = [getattr(module, p, None) for p in parts]
            cross = OTHER_INPUTS & set(inspect.signature(type(module).forward).parameters)
            if all(isinstance(m, nn.Module) for m in found) and not all(isinstance(m, Columns) for m in found) and not cross:
                _fuse(module, name, parts)
                count += 1
    return count
