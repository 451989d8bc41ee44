"""A training linear whose three matmuls — forward, grad-input, grad-weight — each run in BF16,
INT8 or FP8 (seed 002's table and its FP8 counterparts).

Each low-precision matmul A @ B quantizes both operands along their non-reduction dims (rows of A,
columns of B), so every scale factors out of the dot product and lands in the epilogue:
    forward      y  = x  @ Wᵀ    x per token,          W per output channel
    grad-input   dx = dy @ W     dy per token,         W per input channel
    grad-weight  dW = dyᵀ @ x    dy per output channel, x per input channel
INT8 uses `lowbit.formats.int` (absmax, optionally stochastic rounding for the gradients) and the
scaled INT8 matmul op; FP8 uses `lowbit.formats.fp` (E4M3 forward, E4M3 or E5M2 gradients,
row-wise or tensor-wise scales) and `torch._scaled_mm`.

Each operand thus enters one matmul per row and one per column. In INT8, and in FP8 with row-wise
E4M3 scales throughout (fp8-rowwise), both code sets come from one `ops.quantize_rows_cols` (two
passes over the tensor, where quantizing it and its transpose apart takes four), and the forward
saves codes for the backward where that matmul is in the same format: x's column codes in place of
x (half the bytes of bf16) for grad-weight, W's column codes for grad-input. The backward then
quantizes dy once, rows and columns. The codes and scales, hence the results, are those of
quantizing each operand in each matmul.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .. import ops
from ..formats import fp
from ..formats import int as intfmt

KINDS = ("bf16", "int8", "fp8")


@dataclass(frozen=True)
class Recipe:
    forward: str = "bf16"
    grad_input: str = "bf16"
    grad_weight: str = "bf16"
    fp8_grad_format: str = "e5m2"  # gradients' FP8 format; activations and weights are always E4M3
    fp8_scaling: str = "row"  # "row" or "tensor"
    stochastic_rounding: bool = False  # for the quantized gradient operand

    def __post_init__(self):
        for name in ("forward", "grad_input", "grad_weight"):
            if getattr(self, name) not in KINDS:
                raise ValueError(f"{name} must be one of {KINDS}, got {getattr(self, name)!r}")
        fp.fp8_format(self.fp8_grad_format)
        if self.fp8_scaling not in ("row", "tensor"):
            raise ValueError(f"fp8_scaling must be 'row' or 'tensor', got {self.fp8_scaling!r}")


# The rows of seed 002's table, and their FP8 counterparts.
PRECISIONS = {
    "bf16": Recipe(),
    "int8": Recipe("int8", "int8", "int8"),
    "int8-fwd": Recipe("int8", "bf16", "bf16"),
    "int8-fwd-gi": Recipe("int8", "int8", "bf16"),
    # row-wise scales adapt each row's range, so E4M3 serves the gradients too (torchao's row-wise
    # recipe), and cuBLAS's row-wise FP8 matmul takes E4M3 operands only
    "fp8-rowwise": Recipe("fp8", "fp8", "fp8", fp8_grad_format="e4m3", fp8_scaling="row"),
    "fp8-tensorwise": Recipe("fp8", "fp8", "fp8", fp8_scaling="tensor"),
}


def recipe_for(precision: str, stochastic_rounding: bool = False) -> Recipe:
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    r = PRECISIONS[precision]
    return Recipe(r.forward, r.grad_input, r.grad_weight, r.fp8_grad_format, r.fp8_scaling, stochastic_rounding)


def _int8_rows(t: torch.Tensor, rounding: str) -> tuple[torch.Tensor, torch.Tensor]:
    if rounding == "nearest":
        return ops.quantize_rows(t)  # one fused pass on CUDA
    q = intfmt.quantize(t, 8, granularity="token", rounding=rounding, validate=False)
    return q.codes, q.scale.reshape(-1)


def _fp8_rows(t: torch.Tensor, fmt: str, scaling: str) -> tuple[torch.Tensor, torch.Tensor]:
    """FP8 codes, row-major whatever t's strides (cuBLAS takes no other layout; under compile the copy
    fuses into the quantization), and one scale a row."""
    q, scale = fp.quantize_fp8(t, fmt, "channel" if scaling == "row" else "tensor", validate=False)
    return q.contiguous(), scale.reshape(-1).expand(t.shape[0]).reshape(-1, 1)


def _fp8_mm(a_q: torch.Tensor, sa: torch.Tensor, b_q: torch.Tensor, sb: torch.Tensor, scaling: str, out_dtype: torch.dtype) -> torch.Tensor:
    """a_q [M, K] @ b_q [N, K]ᵀ with scales sa [M, 1] and sb [N, 1]: cuBLAS takes E4M3 x E4M3 with either
    scaling and E5M2 x E4M3 with tensor-wise scales only; other pairs and shapes take the reference."""
    m, k = a_q.shape
    if a_q.is_cuda and (a_q.dtype == torch.float8_e4m3fn or scaling == "tensor") and m > 16 and k % 16 == 0 and b_q.shape[0] % 16 == 0:
        if scaling == "tensor":  # _scaled_mm's tensor-wise mode takes one scalar scale each
            sa, sb = sa.reshape(-1)[0].float(), sb.reshape(-1)[0].float()
        else:
            sa, sb = sa.float().reshape(-1, 1).contiguous(), sb.float().reshape(1, -1).contiguous()
        return torch._scaled_mm(a_q, b_q.t(), scale_a=sa, scale_b=sb, out_dtype=out_dtype)
    # the reference: exact products of the FP8 values, fp32 accumulation
    return ((a_q.float() * sa.reshape(-1, 1)) @ (b_q.float() * sb.reshape(-1, 1)).t()).to(out_dtype)


def quantized_matmul(a: torch.Tensor, b: torch.Tensor, kind: str, recipe: Recipe, a_is_grad: bool, out_dtype: torch.dtype) -> torch.Tensor:
    """a [M, K] @ b [K, N] with a quantized per row and b per column (see the module docstring)."""
    if kind == "bf16":  # the unquantized matmul, in the training dtype
        return a.to(out_dtype) @ b.to(out_dtype)
    bt = b.t()  # [N, K]: its rows are b's columns
    if kind == "int8":
        rounding = "stochastic" if (a_is_grad and recipe.stochastic_rounding) else "nearest"
        return _codes_mm(_int8_rows(a, rounding), _int8_rows(bt, "nearest"), "int8", out_dtype)
    a_q, sa = _fp8_rows(a, recipe.fp8_grad_format if a_is_grad else "e4m3", recipe.fp8_scaling)
    b_q, sb = _fp8_rows(bt, "e4m3", recipe.fp8_scaling)
    return _fp8_mm(a_q, sa, b_q, sb, recipe.fp8_scaling, out_dtype)


# The codes path: matmuls whose operands all quantize per row and per column in one format take their
# codes from `ops.quantize_rows_cols` (both sets from two passes over a tensor) and keep them for the
# backward in place of the float tensor.


def codes_format(kind: str, recipe: Recipe) -> str | None:
    """The code format of a matmul on the codes path: INT8, and FP8 with row-wise scales and E4M3
    gradients (fp8-rowwise); None for the others (bf16, tensor-wise or E5M2 FP8)."""
    if kind == "int8":
        return "int8"
    if kind == "fp8" and recipe.fp8_scaling == "row" and recipe.fp8_grad_format == "e4m3":
        return "e4m3"
    return None


def _rows(t: torch.Tensor, fmt: str, rounding: str = "nearest") -> tuple[torch.Tensor, torch.Tensor]:
    """(row codes, scales [M]) of t alone."""
    if fmt == "int8":
        return _int8_rows(t, rounding)
    q, scale = _fp8_rows(t, "e4m3", "row")
    return q, scale.reshape(-1)


def _rows_and_cols(t: torch.Tensor, fmt: str, stochastic: bool = False) -> tuple[tuple, tuple]:
    """((row codes, scales), (column codes transposed, scales)) of t, from one `quantize_rows_cols`;
    stochastic rounding is INT8's only."""
    q, s, qt, st = ops.quantize_rows_cols(t, stochastic and fmt == "int8", -1, fmt)  # -1: a fresh seed each call
    return (q, s), (qt, st)


def _codes_mm(a_rows: tuple, b_cols: tuple, fmt: str, out_dtype: torch.dtype) -> torch.Tensor:
    """a @ b from a's row codes [M, K] and b's column codes, transposed ([N, K], so `.t()` is K-major), with their scales."""
    (qa, sa), (qbt, sb) = a_rows, b_cols
    if fmt == "int8":
        return ops.scaled_int8_mm(qa, qbt.t(), sa, sb, None, out_dtype)
    return _fp8_mm(qa, sa, qbt, sb, "row", out_dtype)


def autocast_input(x: torch.Tensor) -> torch.Tensor:
    """x in the autocast dtype when autocast is on. Autocast does not cast a custom Function's inputs:
    this does what it does for nn.Linear, so the activations (and every 16-bit matmul) are in that
    dtype, not float32."""
    if torch.is_autocast_enabled(x.device.type):
        return x.to(torch.get_autocast_dtype(x.device.type))
    return x


class _QuantLinearFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, recipe: Recipe) -> torch.Tensor:
        x2 = x.reshape(-1, x.shape[-1])
        x_cols = w_cols = None  # column codes for the backward, when the forward made them
        fmt = codes_format(recipe.forward, recipe)
        if fmt is not None:
            keep_x, keep_w = codes_format(recipe.grad_weight, recipe) == fmt, codes_format(recipe.grad_input, recipe) == fmt
            x_rows, x_cols = _rows_and_cols(x2, fmt) if keep_x else (_rows(x2, fmt), None)
            w_rows, w_cols = _rows_and_cols(weight, fmt) if keep_w else (_rows(weight, fmt), None)
            y = _codes_mm(x_rows, w_rows, fmt, x.dtype)  # W's rows are Wᵀ's columns
        else:
            y = quantized_matmul(x2, weight.t(), recipe.forward, recipe, False, x.dtype)
        if bias is not None:
            y = y + bias.to(y.dtype)
        # column codes and their scales in place of the float tensor where the backward has them
        ctx.save_for_backward(*(x_cols or (x2, None)), *(w_cols or (weight, None)))
        ctx.recipe, ctx.fmt, ctx.has_bias, ctx.x_shape = recipe, fmt, bias is not None, x.shape
        ctx.dtypes = x.dtype, weight.dtype
        return y.reshape(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        x_saved, x_scale, w_saved, w_scale = ctx.saved_tensors
        x_cols = (x_saved, x_scale) if x_scale is not None else None
        w_cols = (w_saved, w_scale) if w_scale is not None else None
        recipe, (dtype, w_dtype) = ctx.recipe, ctx.dtypes
        rounding = "stochastic" if recipe.stochastic_rounding else "nearest"
        g2 = grad_out.reshape(-1, grad_out.shape[-1])
        grad_x = grad_w = grad_b = None
        g_rows = g_cols = None  # dy per token for grad-input, per output channel for grad-weight
        fmt = ctx.fmt
        if x_cols is not None and w_cols is not None and all(ctx.needs_input_grad[:2]):
            g_rows, g_cols = _rows_and_cols(g2, fmt, recipe.stochastic_rounding)  # one read of dy for both
        if ctx.needs_input_grad[0]:
            if w_cols is not None:  # grad-input on the codes path, W already quantized
                grad_x = _codes_mm(g_rows if g_rows is not None else _rows(g2, fmt, rounding), w_cols, fmt, dtype)
            else:
                grad_x = quantized_matmul(g2, w_saved, recipe.grad_input, recipe, True, dtype)
            grad_x = grad_x.reshape(ctx.x_shape)
        if ctx.needs_input_grad[1]:  # computed in the activations' dtype, accumulated into the weight's
            if x_cols is not None:  # grad-weight on the codes path, x already quantized
                grad_w = _codes_mm(g_cols if g_cols is not None else _rows(g2.t(), fmt, rounding), x_cols, fmt, dtype)
            else:
                grad_w = quantized_matmul(g2.t(), x_saved, recipe.grad_weight, recipe, True, dtype)
            grad_w = grad_w.to(w_dtype)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = g2.sum(dim=0)
        return grad_x, grad_w, grad_b, None


class QuantTrainLinear(nn.Linear):
    """nn.Linear whose matmuls follow a `Recipe`; parameters stay in their dtype (the master copy)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, recipe: Recipe = Recipe(), **kw):
        super().__init__(in_features, out_features, bias, **kw)
        self.recipe = recipe

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _QuantLinearFn.apply(autocast_input(x), self.weight, self.bias, self.recipe)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, recipe={self.recipe}"
