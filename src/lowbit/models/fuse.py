"""One matmul for the projections that read the same input: q, k, v → `qkv_proj`; gate, up → `gate_up_proj`.

    from lowbit.models.fuse import fuse_projections
    fuse_projections(model)        # before quantizing: the fused linears are quantized like any other

At one token a decoder layer's linears are GEMVs bound by reading their weights, and a small GEMV reads them slower
than a large one: its launch, first loads and tail are a larger share. gpt-fast and vLLM fuse these projections for
that reason. Quantization per output row or row group (RTN, GPTQ, NF4, FP8, W8A8's per-channel weights) gives a
fused weight the codes and scales of its parts, so fusing first changes the time, not the answer.

The module keeps its forward: its class becomes a subclass whose forward runs the fused linear on the input first, and
the old projections become `Columns` of that output, so transformers' own attention and MLP code runs unchanged. That
is only right where the forward reads its input through those projections alone, which `reads_input_only_through`
checks on its source; every other module is left as it is.
"""

from __future__ import annotations

import ast
import functools
import inspect
import textwrap

import torch
from torch import nn

# the projections of one input, fused into the first name
GROUPS = {"qkv_proj": ("q_proj", "k_proj", "v_proj"), "gate_up_proj": ("gate_proj", "up_proj")}


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
def reads_input_only_through(cls: type, parts: tuple[str, ...]) -> bool:
    """Whether cls.forward uses its input (its first argument) only as the argument of `self.<part>(...)` for these
    parts, or for its leading dims (`.shape[:-1]`), which the fused output shares. Only then may the input be replaced
    by the fused output; any other use (another projection, a residual, its width, cross-attention's second input)
    leaves the module unfused. A forward whose source cannot be read counts as another use."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls.forward)))
    except (OSError, TypeError, SyntaxError):
        return False
    fn = tree.body[0]
    if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) or len(fn.args.args) < 2:
        return False
    name = fn.args.args[1].arg
    allowed = set()
    for node in ast.walk(fn):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "self" and node.func.attr in parts and len(node.args) == 1 and not node.keywords):
            allowed.add(id(node.args[0]))
        if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "shape"
                and isinstance(node.slice, ast.Slice) and node.slice.lower is None and node.slice.step is None
                and isinstance(node.slice.upper, ast.UnaryOp) and isinstance(node.slice.upper.op, ast.USub)
                and isinstance(node.slice.upper.operand, ast.Constant) and node.slice.upper.operand.value == 1):
            allowed.add(id(node.value.value))
    uses = [n for n in ast.walk(fn) if isinstance(n, ast.Name) and n.id == name]
    return bool(uses) and all(id(n) in allowed for n in uses)


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

    return type(f"Fused{cls.__name__}", (cls,), {"forward": forward, "fused_input": name, "__doc__": f"{cls.__name__} with {name} fused."})


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
    many were fused. Left as they are: modules fused before, and those whose forward uses its input otherwise than
    through these projections (`reads_input_only_through`: transformers' Llama-family attention and MLP pass; BART's
    cross-attention does not). Run it on the float model: quantized projections raise a ValueError."""
    count = 0
    for module in list(model.modules()):
        for name, parts in GROUPS.items():
            found = [getattr(module, p, None) for p in parts]
            if (all(isinstance(m, nn.Module) for m in found) and not hasattr(type(module), "fused_input")
                    and reads_input_only_through(type(module), parts)):
                _fuse(module, name, parts)
                count += 1
    return count
