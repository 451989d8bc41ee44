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

Each operand thus enters one matmul per row and one per column. In INT8 both code sets come from one
`ops.quantize_rows_cols` (two passes over the tensor, where quantizing it and its transpose apart
takes four), and the forward saves int8 for the backward where that matmul is INT8 too: x's column
codes in place of x (half the bytes of bf16) when grad-weight is INT8, W's column codes when
grad-input is INT8. With both INT8 the backward quantizes dy once, rows and columns. The codes and
scales, hence the results, are those of quantizing each operand in each matmul.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .. import ops
from ..formats import fp

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
    return ops.quantize_rows(t, rounding == "stochastic", -1)  # fused on CUDA; -1: a fresh seed each call


def _int8_mm(a_rows: tuple, b_cols: tuple, out_dtype: torch.dtype) -> torch.Tensor:
    """a @ b from a's row codes [M, K] and b's column codes, transposed ([N, K], so `.t()` is K-major), with their scales."""
    (qa, sa), (qbt, sb) = a_rows, b_cols
    return ops.scaled_int8_mm(qa, qbt.t(), sa, sb, None, out_dtype)


def _rows_and_cols(t: torch.Tensor, stochastic: bool = False) -> tuple[tuple, tuple]:
    """((row codes, scales), (column codes transposed, scales)) of t, from one `quantize_rows_cols`."""
    q, s, qt, st = ops.quantize_rows_cols(t, stochastic, -1)  # -1: a fresh seed each call, as torch.rand draws
    return (q, s), (qt, st)


def _fp8_rows(t: torch.Tensor, fmt: str, scaling: str) -> tuple[torch.Tensor, torch.Tensor]:
    """FP8 codes, row-major whatever t's strides (cuBLAS takes no other layout; under compile the copy
    fuses into the quantization), and one scale a row."""
    q, scale = fp.quantize_fp8(t, fmt, "channel" if scaling == "row" else "tensor", validate=False)
    return q.contiguous(), scale.reshape(-1).expand(t.shape[0]).reshape(-1, 1)


def quantized_matmul(a: torch.Tensor, b: torch.Tensor, kind: str, recipe: Recipe, a_is_grad: bool, out_dtype: torch.dtype) -> torch.Tensor:
    """a [M, K] @ b [K, N] with a quantized per row and b per column (see the module docstring)."""
    if kind == "bf16":  # the unquantized matmul, in the training dtype
        return a.to(out_dtype) @ b.to(out_dtype)
    bt = b.t()  # [N, K]: its rows are b's columns
    if kind == "int8":
        rounding = "stochastic" if (a_is_grad and recipe.stochastic_rounding) else "nearest"
        return _int8_mm(_int8_rows(a, rounding), _int8_rows(bt, "nearest"), out_dtype)
    a_fmt = recipe.fp8_grad_format if a_is_grad else "e4m3"
    a_q, sa = _fp8_rows(a, a_fmt, recipe.fp8_scaling)
    b_q, sb = _fp8_rows(bt, "e4m3", recipe.fp8_scaling)
    m, k = a.shape
    # cuBLAS: E4M3 x E4M3 with either scaling; E5M2 x E4M3 with tensor-wise scales only
    if a.is_cuda and (a_fmt == "e4m3" or recipe.fp8_scaling == "tensor") and m > 16 and k % 16 == 0 and b.shape[1] % 16 == 0:
        if recipe.fp8_scaling == "tensor":  # _scaled_mm's tensor-wise mode takes one scalar scale each
            sa, sb = sa.reshape(-1)[0].float(), sb.reshape(-1)[0].float()
        else:
            sa, sb = sa.float().contiguous(), sb.float().reshape(1, -1).contiguous()
        # fast accumulation (the tensor cores' accumulator, not promoted to fp32 every few K-steps) in the
        # forward only, as torchao's float8 training does: the gradients keep cuBLAS's promoted sums
        return torch._scaled_mm(a_q, b_q.t(), scale_a=sa, scale_b=sb, out_dtype=out_dtype, use_fast_accum=not a_is_grad)
    # the reference: exact products of the FP8 values, fp32 accumulation (also for E5M2 x E4M3 and odd shapes)
    return ((a_q.float() * sa) @ (b_q.float() * sb).t()).to(out_dtype)


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
        if recipe.forward == "int8":
            x_rows, x_cols = _rows_and_cols(x2) if recipe.grad_weight == "int8" else (_int8_rows(x2, "nearest"), None)
            w_rows, w_cols = _rows_and_cols(weight) if recipe.grad_input == "int8" else (_int8_rows(weight, "nearest"), None)
            y = _int8_mm(x_rows, w_rows, x.dtype)  # W's rows are Wᵀ's columns
        else:
            y = quantized_matmul(x2, weight.t(), recipe.forward, recipe, False, x.dtype)
        if bias is not None:
            y = y + bias.to(y.dtype)
        # int8 column codes and their scales in place of the float tensor where the backward has them
        ctx.save_for_backward(*(x_cols or (x2, None)), *(w_cols or (weight, None)))
        ctx.recipe, ctx.has_bias, ctx.x_shape = recipe, bias is not None, x.shape
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
        if x_cols is not None and w_cols is not None and all(ctx.needs_input_grad[:2]):
            g_rows, g_cols = _rows_and_cols(g2, recipe.stochastic_rounding)  # one read of dy for both
        if ctx.needs_input_grad[0]:
            if w_cols is not None:  # grad-input is int8, W already quantized
                grad_x = _int8_mm(g_rows if g_rows is not None else _int8_rows(g2, rounding), w_cols, dtype)
            else:
                grad_x = quantized_matmul(g2, w_saved, recipe.grad_input, recipe, True, dtype)
            grad_x = grad_x.reshape(ctx.x_shape)
        if ctx.needs_input_grad[1]:  # computed in the activations' dtype, accumulated into the weight's
            if x_cols is not None:  # grad-weight is int8, x already quantized
                grad_w = _int8_mm(g_cols if g_cols is not None else _int8_rows(g2.t(), rounding), x_cols, dtype)
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
