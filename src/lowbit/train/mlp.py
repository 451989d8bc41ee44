"""A Llama-style gated MLP, down(silu(gate(x)) · up(x)), as one autograd function when its three linears run on
codes in one format (INT8, or FP8 row-wise with E4M3 gradients): the SiLU gate and its backward then run inside the
quantization passes of the tensors they make, which are never stored.

Unfused, h = silu(g)·u is written by one kernel and read twice by its quantization, and the backward's dg and du
likewise: per llama2-1b layer at 16 × 2048 tokens, 0.4 GB and 1.6 GB that need not move (~11 ms of a 335 ms H200
step, session 14). The codes are those of quantizing the tensors the unfused layers hand on (`rows_cols.produce`),
so the matmuls, scales and saved operands are the unfused ones: x's and h's column codes, the weights' column
codes, and g and u for the backward.

Measured, it lost (H200, session 14, call 5; `convert(..., fuse_mlp=True)`, off by default): the llama2-1b step at
16 × 2048 went from 1.20x bf16 to 1.08x (fp8-rowwise 1.13x → 1.07x). Its GPU kernel time stayed at 335.7 ms a step:
the passes with producers inside took 25 ms more (quantize 47.8 → 72.7 ms, 2.6 TB/s where the plain passes move
3.1) while the kernels they replace took 20 ms less (other 71.9 → 51.6). The step itself grew by 39 ms that no
kernel accounts for: the host, which paced the GPU in every precision then and more so with the fused ops (session
15, call 2: 396.4 ms of wall time against 343.8 of kernels; CUDA graphs now end that, `train.loop.compile_blocks`).
The gradient passes now take 32 × 64 tiles (session 15, call 1: 2420 GB/s against 1745), by which the fused kernels
would come to ~331 ms against 330 unfused: not re-timed, and no gain expected.
"""

from __future__ import annotations

import torch
from torch import nn

from ..layers import replace_module
from ..ops.rows_cols import empty_codes, quantize_produced
from .linear import QuantTrainLinear, _codes_mm, _rows_and_cols, autocast_input, codes_format


# Opaque to torch.compile, as `linear._codes_op` and for its reasons: each producer's inputs are stored once.
@torch.library.custom_op("lowbit::train_silu_mul_codes", mutates_args=())
def _silu_mul_codes(g: torch.Tensor, u: torch.Tensor, fmt: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    return quantize_produced("silu_mul", g, u, fmt=fmt, seed=-1)


@_silu_mul_codes.register_fake
def _(g, u, fmt):
    return empty_codes(g, fmt)


@torch.library.custom_op("lowbit::train_silu_mul_grad_codes", mutates_args=())
def _silu_mul_grad_codes(dh: torch.Tensor, g: torch.Tensor, u: torch.Tensor, fmt: str, stochastic: bool) -> tuple[
        torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    return quantize_produced("silu_mul_grad", dh, g, u, fmt=fmt, stochastic=stochastic, seed=-1)


@_silu_mul_grad_codes.register_fake
def _(dh, g, u, fmt, stochastic):
    return empty_codes(dh, fmt, 2)


class _QuantMLPFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w_gate, w_up, w_down, fmt: str, stochastic: bool):
        x2 = x.reshape(-1, x.shape[-1])
        x_rows, x_cols = _rows_and_cols(x2, fmt)
        (wg_rows, wg_cols), (wu_rows, wu_cols), (wd_rows, wd_cols) = (_rows_and_cols(w, fmt) for w in (w_gate, w_up, w_down))
        g = _codes_mm(x_rows, wg_rows, fmt, x.dtype, fast_accum=True)  # the gate's and up's outputs
        u = _codes_mm(x_rows, wu_rows, fmt, x.dtype, fast_accum=True)
        hq, hs, hqt, hst = _silu_mul_codes(g, u, fmt)  # h = silu(g)·u, never stored
        y = _codes_mm((hq, hs), wd_rows, fmt, x.dtype, fast_accum=True)
        ctx.save_for_backward(*x_cols, *wg_cols, *wu_cols, *wd_cols, hqt, hst, g, u)
        ctx.fmt, ctx.stochastic, ctx.x_shape, ctx.w_dtype = fmt, stochastic, x.shape, w_gate.dtype
        return y.reshape(*x.shape[:-1], w_down.shape[0])

    @staticmethod
    def backward(ctx, grad_out):
        xq, xs, wgq, wgs, wuq, wus, wdq, wds, hqt, hst, g, u = ctx.saved_tensors
        fmt, dtype = ctx.fmt, g.dtype
        stochastic = ctx.stochastic and fmt == "int8"  # stochastic rounding is for int8 codes only
        dy_rows, dy_cols = _rows_and_cols(grad_out.reshape(-1, grad_out.shape[-1]), fmt, stochastic)
        dh = _codes_mm(dy_rows, (wdq, wds), fmt, dtype)  # [tokens, ffn]
        grad_down = _codes_mm(dy_cols, (hqt, hst), fmt, dtype)
        codes = _silu_mul_grad_codes(dh, g, u, fmt, stochastic)  # dg and du, never stored
        dg_rows, dg_cols, du_rows, du_cols = codes[0:2], codes[2:4], codes[4:6], codes[6:8]
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = (_codes_mm(dg_rows, (wgq, wgs), fmt, dtype) + _codes_mm(du_rows, (wuq, wus), fmt, dtype)).reshape(ctx.x_shape)
        grad_gate = _codes_mm(dg_cols, (xq, xs), fmt, dtype)
        grad_up = _codes_mm(du_cols, (xq, xs), fmt, dtype)
        return grad_x, *(w.to(ctx.w_dtype) for w in (grad_gate, grad_up, grad_down)), None, None


def fused_format(gate: nn.Module, up: nn.Module, down: nn.Module) -> str | None:
    """The codes format the three linears share in all their matmuls, or None where they cannot run as one
    function (another layer type, a bias, recipes that differ or run a matmul in bf16 / on torch-op FP8)."""
    layers = (gate, up, down)
    if not all(type(m) is QuantTrainLinear and m.bias is None and m.recipe == gate.recipe for m in layers):
        return None
    formats = {codes_format(gate.recipe, w) for w in ("forward", "grad_input", "grad_weight")}
    return formats.pop() if len(formats) == 1 and None not in formats else None


class QuantTrainMLP(nn.Module):
    """gate_proj, up_proj and down_proj (QuantTrainLinear, kept as submodules: the same parameters and state-dict
    keys as the MLP it replaces) and silu, run as `_QuantMLPFn`."""

    def __init__(self, gate_proj: QuantTrainLinear, up_proj: QuantTrainLinear, down_proj: QuantTrainLinear):
        super().__init__()
        self.fmt = fused_format(gate_proj, up_proj, down_proj)
        if self.fmt is None:
            raise ValueError("gate_proj, up_proj and down_proj must be bias-free QuantTrainLinears of one recipe on codes "
                             "(int8, or fp8-rowwise)")
        self.gate_proj, self.up_proj, self.down_proj = gate_proj, up_proj, down_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _QuantMLPFn.apply(autocast_input(x), self.gate_proj.weight, self.up_proj.weight, self.down_proj.weight,
                                 self.fmt, self.gate_proj.recipe.stochastic_rounding)


def _is_silu(act) -> bool:
    """torch's SiLU module, or transformers' (`activations.SiLUActivation`, which is no nn.SiLU)."""
    return isinstance(act, nn.SiLU) or type(act).__name__ == "SiLUActivation"


def fuse_mlps(model: nn.Module) -> list[str]:
    """Replace in place each module with gate_proj, up_proj, down_proj and a SiLU act_fn (Llama, Mistral, Qwen...)
    whose linears `fused_format` takes by a QuantTrainMLP; the names replaced."""
    names = [name for name, m in model.named_modules()
             if _is_silu(getattr(m, "act_fn", None))
             and all(hasattr(m, p) for p in ("gate_proj", "up_proj", "down_proj"))
             and fused_format(m.gate_proj, m.up_proj, m.down_proj) is not None]
    for name in names:
        m = model.get_submodule(name)
        replace_module(model, name, QuantTrainMLP(m.gate_proj, m.up_proj, m.down_proj))
    return names
