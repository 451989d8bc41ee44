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

Each operand thus enters one matmul per row and one per column. In INT8, and in FP8 row-wise with E4M3
gradients, both code sets come from one `ops.quantize_rows_cols` (two passes over the tensor, where
quantizing it and its transpose apart takes four), and the forward saves codes for the backward where
that matmul takes the same format: x's column codes in place of x (half the bytes of bf16) for
grad-weight, W's column codes for grad-input; the backward then quantizes dy once, rows and columns.
Each goes through an opaque op (see `_codes_op`): under torch.compile the linears that share one input
(q/k/v, gate/up) quantize it once, and the tensor's producer stores it once. FP8 tensor-wise (and E5M2
gradients) quantize in torch ops, which Inductor fuses. The codes and scales, hence the results, are those
of quantizing each operand in each matmul.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .. import ops
from ..formats import fp
from ..ops.rows_cols import empty_codes

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


def _codes_mm(a_rows: tuple, b_cols: tuple, fmt: str, out_dtype: torch.dtype, fast_accum: bool = False) -> torch.Tensor:
    """a @ b from a's row codes [M, K] and b's column codes, transposed ([N, K], so `.t()` is K-major), with their
    scales: the scaled INT8 matmul, or for E4M3 `torch._scaled_mm` (row-wise scales) where cuBLAS takes the
    shapes, exact FP8 products summed in fp32 elsewhere. (A GPU without FP8 matmuls is not checked for here: the
    check would run inside compiled graphs; `lowbit train` refuses FP8 on such a GPU.)"""
    (qa, sa), (qbt, sb) = a_rows, b_cols
    if fmt == "int8":
        return ops.scaled_int8_mm(qa, qbt.t(), sa, sb, None, out_dtype)
    if qa.is_cuda and qa.shape[0] > 16 and qa.shape[1] % 16 == 0 and qbt.shape[0] % 16 == 0:
        return torch._scaled_mm(qa, qbt.t(), scale_a=sa.reshape(-1, 1), scale_b=sb.reshape(1, -1), out_dtype=out_dtype,
                                use_fast_accum=fast_accum)
    return ((qa.float() * sa.reshape(-1, 1)) @ (qbt.float() * sb.reshape(-1, 1)).t()).to(out_dtype)


@torch.library.custom_op("lowbit::train_codes", mutates_args=())
def _codes_op(t: torch.Tensor, fmt: str, stochastic: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """`quantize_rows_cols` of one operand, opaque to torch.compile, for two reasons.
    - q/k/v (and gate/up) take one input, and Inductor's common-subexpression pass merges identical opaque
      calls: the compiled graph quantizes it once and saves one copy of its column codes. Traced into (the
      triton op), each linear made its own.
    - Traced into, each of the op's two kernels got its own copy of a tensor that a fused kernel computes,
      such as the SiLU backward's gradients: a second store of every element (H200, session 14: the SiLU
      backward took 16.3 ms a step against bf16's 11.2). Opaque, the producer stores it once.
    (Merging is safe with stochastic rounding too: no two calls of a step quantize the same tensor.)"""
    return ops.quantize_rows_cols(t, stochastic, -1, fmt)  # -1: a fresh seed each call, as torch.rand draws


@_codes_op.register_fake
def _(t, fmt, stochastic):
    return empty_codes(t, fmt)


def _rows_and_cols(t: torch.Tensor, fmt: str = "int8", stochastic: bool = False) -> tuple[tuple, tuple]:
    """((row codes, scales), (column codes transposed, scales)) of t, from one `quantize_rows_cols`."""
    q, s, qt, st = _codes_op(t, fmt, stochastic)
    return (q, s), (qt, st)


def _rows(t: torch.Tensor, fmt: str, rounding: str = "nearest") -> tuple[torch.Tensor, torch.Tensor]:
    """Row codes only, in one pass where the format has one: for an operand whose columns no matmul takes."""
    return _int8_rows(t, rounding) if fmt == "int8" else ops.quantize_rows_fp8(t)


def codes_format(recipe: Recipe, which: str) -> str | None:
    """The codes format of one matmul (`which`: "forward", "grad_input" or "grad_weight") where it runs on
    row and column codes: "int8", or "e4m3" for FP8 row-wise with E4M3 operands; None where it does not
    (bf16, and FP8 tensor-wise or E5M2 gradients, which quantize in torch ops)."""
    kind = getattr(recipe, which)
    if kind == "int8":
        return "int8"
    if kind == "fp8" and recipe.fp8_scaling == "row" and (which == "forward" or recipe.fp8_grad_format == "e4m3"):
        return "e4m3"
    return None


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
        return _codes_mm(_int8_rows(a, rounding), _int8_rows(bt, "nearest"), "int8", out_dtype)
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
        fwd, gi, gw = (codes_format(recipe, w) for w in ("forward", "grad_input", "grad_weight"))
        x_cols = w_cols = None  # column codes for the backward, when the forward made them
        if fwd is not None:  # the forward on codes; the backward's matmuls in the same format reuse their columns
            x_rows, x_cols = _rows_and_cols(x2, fwd) if gw == fwd else (_rows(x2, fwd), None)
            w_rows, w_cols = _rows_and_cols(weight, fwd) if gi == fwd else (_rows(weight, fwd), None)
            y = _codes_mm(x_rows, w_rows, fwd, x.dtype, fast_accum=True)  # W's rows are Wᵀ's columns
        else:
            y = quantized_matmul(x2, weight.t(), recipe.forward, recipe, False, x.dtype)
        if bias is not None:
            y = y + bias.to(y.dtype)
        # column codes and their scales in place of the float tensor where the backward has them
        ctx.save_for_backward(*(x_cols or (x2, None)), *(w_cols or (weight, None)))
        ctx.recipe, ctx.has_bias, ctx.x_shape = recipe, bias is not None, x.shape
        ctx.dtypes = x.dtype, weight.dtype
        ctx.formats = gi, gw
        return y.reshape(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        x_saved, x_scale, w_saved, w_scale = ctx.saved_tensors
        x_cols = (x_saved, x_scale) if x_scale is not None else None
        w_cols = (w_saved, w_scale) if w_scale is not None else None
        recipe, (dtype, w_dtype), (gi, gw) = ctx.recipe, ctx.dtypes, ctx.formats
        stochastic = recipe.stochastic_rounding
        rounding = "stochastic" if stochastic else "nearest"
        g2 = grad_out.reshape(-1, grad_out.shape[-1])
        grad_x = grad_w = grad_b = None
        g_rows = g_cols = None  # dy per token for grad-input, per output channel for grad-weight
        if x_cols is not None and w_cols is not None and gi == gw and all(ctx.needs_input_grad[:2]):
            g_rows, g_cols = _rows_and_cols(g2, gi, stochastic and gi == "int8")  # one read of dy for both
        if ctx.needs_input_grad[0]:
            if w_cols is not None:  # grad-input on codes, W already quantized
                if g_rows is None:
                    g_rows = _rows(g2, gi, rounding)
                grad_x = _codes_mm(g_rows, w_cols, gi, dtype)
            else:
                grad_x = quantized_matmul(g2, w_saved, recipe.grad_input, recipe, True, dtype)
            grad_x = grad_x.reshape(ctx.x_shape)
        if ctx.needs_input_grad[1]:  # computed in the activations' dtype, accumulated into the weight's
            if x_cols is not None:  # grad-weight on codes, x already quantized
                if g_cols is None:
                    g_cols = _rows(g2.t(), gw, rounding)
                grad_w = _codes_mm(g_cols, x_cols, gw, dtype)
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
