"""RMSNorms computed inside the weight-only GEMVs that read them: one kernel less per norm in a decode step.

    from lowbit.models.fused_norms import fuse_norms
    fuse_norms(model)        # after quantizing, for inference: each decoder block's norms move into its linears

In a Llama decoder layer at one token, each RMSNorm is a kernel of its own between two GEMVs (H100, 7B, W4A16: ~2 µs
each, 64 a step). The word GEMV reads all of x in every program anyway, so it can apply the norm on the way in: x times
the gain as it is loaded, the sum times 1/rms at the end, from x's squares summed alongside (`_gemv_words_kernel`'s
NORM). Every other path (more tokens, act-order) runs the norm first, as `ops.weight_only.rms_norm`, which gives the
norm module's output bit for bit (checked on each norm before it is fused); the fused path does not round the normed
x to 16 bits and so differs from it by that rounding only. A norm feeding q, k and v unfused runs three times where it
runs first (`fuse_projections` before quantizing makes it one).

What changes, in place: the norm module's class becomes a subclass whose forward passes its input through, and each
linear it feeds (`IntWeightLinear`, `NF4Linear`) a subclass whose forward calls the layer with `norm=(gain, eps)`;
parameters stay where they were, so the state dict, `.to()` and saving are unchanged. That is only right where the
norm's output goes nowhere else: the block's forward must pass it straight to one module (`feeds_only`, read from its
source), whose forward reads its input only through the projections (fused by `fuse_projections`, or
`reads_input_only_through`). Anything else is left as it is.
"""

from __future__ import annotations

import ast
import functools
import inspect
import textwrap

import torch
from torch import nn

from ..layers.int_weight import IntWeightLinear
from ..layers.nf4 import NF4Linear
from ..ops.weight_only import rms_norm
from ..select import transformer_blocks
from .fuse import reads_input_only_through
from .norms import NORM_CONSUMERS

# the layers whose forward takes norm=(gain, eps)
NORM_TAKING = (IntWeightLinear, NF4Linear)


def _self_call(node: ast.AST, attr: str) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "self" and node.func.attr == attr)


def _bound(target: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}


@functools.cache
def feeds_only(cls: type, norm: str, consumer: str) -> bool:
    """Whether cls.forward calls self.<norm> once, as `v = self.<norm>(...)` among its top-level statements, and the
    next statement that reads v is `... = self.<consumer>(v)` (or `hidden_states=v`), which reads it only there and
    binds v again: the norm's output then reaches nothing but the consumer. A forward whose source cannot be read
    does not count."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls.forward)))
    except (OSError, TypeError, SyntaxError):
        return False
    fn = tree.body[0]
    if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return False
    if sum(_self_call(n, norm) for n in ast.walk(fn)) != 1:
        return False
    body = fn.body
    for i, st in enumerate(body):
        if isinstance(st, ast.Assign) and len(st.targets) == 1 and isinstance(st.targets[0], ast.Name) and _self_call(st.value, norm):
            var = st.targets[0].id
            for nxt in body[i + 1:]:
                names = [n for n in ast.walk(nxt) if isinstance(n, ast.Name) and n.id == var]
                reads = [n for n in names if isinstance(n.ctx, ast.Load)]
                if not reads:
                    if names:  # bound again (or deleted) before the consumer reads it, maybe only on some branch
                        return False
                    continue
                if not (isinstance(nxt, ast.Assign) and _self_call(nxt.value, consumer) and len(reads) == 1):
                    return False
                call = nxt.value
                passed = (call.args and call.args[0] is reads[0]) or any(
                    kw.arg == "hidden_states" and kw.value is reads[0] for kw in call.keywords)
                return bool(passed) and any(var in _bound(t) for t in nxt.targets)
            return False
    return False


def _eps(norm: nn.Module) -> float | None:
    eps = getattr(norm, "variance_epsilon", getattr(norm, "eps", None))
    return float(eps) if isinstance(eps, (int, float)) else None


@torch.no_grad()
def computes_rms_norm(norm: nn.Module) -> bool:
    """Whether the module's output is `rms_norm(x, norm.weight, eps)` bit for bit, on random inputs of its own dtype
    and device (Gemma's (1 + gain), a LayerNorm, a bias: no)."""
    weight, eps = getattr(norm, "weight", None), _eps(norm)
    params = list(norm.parameters(recurse=False))
    if not isinstance(weight, torch.Tensor) or weight.dim() != 1 or eps is None or len(params) != 1 or params[0] is not weight:
        return False
    gen = torch.Generator(device=weight.device).manual_seed(0)
    x = (torch.randn(3, weight.shape[0], generator=gen, device=weight.device) * 4).to(weight.dtype)
    out = norm(x)
    return isinstance(out, torch.Tensor) and out.dtype == x.dtype and torch.equal(out, rms_norm(x, weight, eps))


@functools.cache
def _passing_class(cls: type) -> type:
    def forward(self, x, *args, **kwargs):
        return x

    return type(f"Fused{cls.__name__}", (cls,), {"forward": forward, "passes_input": True,
                                                 "__doc__": f"{cls.__name__} computed by the linears it feeds."})


@functools.cache
def _normed_class(cls: type) -> type:
    def forward(self, x):
        norm = self.input_norm
        if x.dtype != norm.weight.dtype or (torch.is_grad_enabled() and (x.requires_grad or norm.weight.requires_grad)):
            return cls.forward(self, type(norm).__mro__[1].forward(norm, x))  # the norm as its own class computes it
        return cls.forward(self, x, norm=(norm.weight, _eps(norm)))

    return type(f"Normed{cls.__name__}", (cls,), {"forward": forward, "__doc__": f"{cls.__name__} that applies its input's RMSNorm."})


def _readers(owner: nn.Module, consumers: list[str]) -> list[nn.Module] | None:
    """The linears of `owner` that read its input: the fused projection, or every part where its forward reads the
    input only through them; None otherwise."""
    fused = getattr(type(owner), "fused_input", None)
    if fused is not None:
        return [getattr(owner, fused)]
    parts = tuple(c.rpartition(".")[2] for c in consumers)
    if all(isinstance(getattr(owner, p, None), nn.Module) for p in parts) and reads_input_only_through(type(owner), parts):
        return [getattr(owner, p) for p in parts]
    return None


def fuse_norms(model: nn.Module) -> int:
    """Move, in place, each transformer block's RMSNorms into the weight-only linears they feed (see the module doc);
    returns how many were fused. Left as they are: norms that are not `rms_norm`, whose output goes elsewhere too,
    or that feed a linear other than `NORM_TAKING` (bf16 `nn.Linear`, W8A8: cuBLAS and the activation quantization
    cannot take them). Run it after quantizing; gradients are not fused (the layer then runs the norm first)."""
    found = transformer_blocks(model)
    if found is None:
        return 0
    count = 0
    for block in found[1]:
        for norm_attr, consumers in NORM_CONSUMERS:
            norm = getattr(block, norm_attr, None)
            owner_attr = consumers[0].partition(".")[0]
            owner = getattr(block, owner_attr, None)
            if (not isinstance(norm, nn.Module) or not isinstance(owner, nn.Module) or hasattr(type(norm), "passes_input")
                    or any(c.partition(".")[0] != owner_attr for c in consumers)):
                continue
            linears = _readers(owner, consumers)
            if (not linears or not all(type(lin) in NORM_TAKING for lin in linears) or not feeds_only(type(block), norm_attr, owner_attr)
                    or not computes_rms_norm(norm)):
                continue
            norm.__class__ = _passing_class(type(norm))
            for lin in linears:
                object.__setattr__(lin, "input_norm", norm)  # not a submodule: it stays registered in its block, once
                lin.__class__ = _normed_class(type(lin))
            count += 1
    return count
