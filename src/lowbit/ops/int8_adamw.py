"""One step of INT8 weight-only AdamW (`train.int8_weight`), fused: a program per output channel reads
the row's gradient, moments and int8 codes once, and writes back the moments and the new weight's
codes and scale (absmax per channel, stochastic or nearest rounding), where the torch reference runs
some 25 elementwise kernels a layer over float32 tensors (the step took ~half of int8-weight's
non-matmul time in the session-5 H100 profile).

    m ← β1·m + (1 − β1)·g        v ← β2·v + (1 − β2)·g²
    w ← q·s·(1 − lr·λ) − lr · (m / (1 − β1ᵗ)) / (√(v / (1 − β2ᵗ)) + ε)
    s ← max(|w|) / 127 per row,  q ← round(w / s)  (`lowbit.formats.int`'s symmetric int8)
"""

from __future__ import annotations

import torch

from ..formats import int as intfmt
from .rows_cols import use_triton
from .tiles import next_power_of_2

try:
    import triton
    import triton.language as tl

    from .rows_cols import abs_max, absmax_scale, codes
except ImportError:  # lowbit runs without Triton; the step then takes the reference path
    triton = None

MAX_ROW = 16384  # a row is held in registers


if triton is not None:

    @triton.jit(do_not_specialize=["seed"])  # a new seed every step must not mean a new compile
    def _adamw_int8_kernel(
        q_ptr, s_ptr, g_ptr, m_ptr, v_ptr, K, seed, lr, beta1, one_minus_beta1, beta2, one_minus_beta2, eps, decay, bc1, bc2,
        BLOCK: tl.constexpr, STOCHASTIC: tl.constexpr,
    ):
        row = tl.program_id(0)
        offs = tl.arange(0, BLOCK)
        mask = offs < K
        base = row.to(tl.int64) * K
        g = tl.load(g_ptr + base + offs, mask=mask, other=0.0)
        # the torch reference's order: m·β1 + g·(1 − β1), v·β2 + g·g·(1 − β2), 1 − β rounded from a double
        m = tl.load(m_ptr + base + offs, mask=mask, other=0.0) * beta1 + g * one_minus_beta1
        v = tl.load(v_ptr + base + offs, mask=mask, other=0.0) * beta2 + (g * g) * one_minus_beta2
        tl.store(m_ptr + base + offs, m, mask=mask)
        tl.store(v_ptr + base + offs, v, mask=mask)
        w = tl.load(q_ptr + base + offs, mask=mask, other=0).to(tl.float32) * tl.load(s_ptr + row)
        w = w * decay - lr * tl.math.div_rn(tl.math.div_rn(m, bc1), tl.sqrt_rn(tl.math.div_rn(v, bc2)) + eps)
        w = tl.where(mask, w, 0.0)
        scale = absmax_scale(abs_max(w, 0), False)
        u = 0.0
        if STOCHASTIC:
            u = tl.rand(seed, base + offs)
        tl.store(q_ptr + base + offs, codes(w, scale, u, False, STOCHASTIC, False), mask=mask)
        tl.store(s_ptr + row, scale)


def _check(qweight, scale, grad, m, v) -> None:
    if qweight.dtype != torch.int8 or qweight.dim() != 2:
        raise ValueError(f"qweight must be a 2-D int8 tensor, got {qweight.dtype} {tuple(qweight.shape)}")
    for name, t in (("grad", grad), ("m", m), ("v", v)):
        if t.dtype != torch.float32 or t.shape != qweight.shape or not t.is_contiguous():
            raise ValueError(f"{name} must be a contiguous float32 tensor of shape {tuple(qweight.shape)}, got {t.dtype} {tuple(t.shape)}")
    if scale.dtype != torch.float32 or scale.numel() != qweight.shape[0]:
        raise ValueError(f"scale must hold one float32 per row ({qweight.shape[0]}), got {scale.dtype} {tuple(scale.shape)}")


def adamw_int8_step_(
    qweight: torch.Tensor, scale: torch.Tensor, grad: torch.Tensor, m: torch.Tensor, v: torch.Tensor, *,
    step: int, lr: float, betas: tuple[float, float], eps: float, weight_decay: float, rounding: str = "stochastic",
    generator: torch.Generator | None = None,
) -> None:
    """Update qweight [N, K] int8, scale [N, 1] and the float32 moments m, v in place from grad (step ≥ 1).
    Stochastic draws come from `generator` (a CPU one, or torch's default): the reference draws its
    noise from it, the kernel one Philox seed."""
    _check(qweight, scale, grad, m, v)
    if rounding not in intfmt.ROUNDINGS:
        raise ValueError(f"rounding must be one of {intfmt.ROUNDINGS}, got {rounding!r}")
    step_fn = adamw_int8_step_triton if use_triton(qweight, scale, grad, m, v) and qweight.shape[1] <= MAX_ROW else adamw_int8_step_reference
    step_fn(qweight, scale, grad, m, v, step=step, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, rounding=rounding,
            generator=generator)


def adamw_int8_step_triton(qweight, scale, grad, m, v, *, step, lr, betas, eps, weight_decay, rounding, generator) -> None:
    """The fused kernel (also in the interpreter, on CPU tensors); rows up to MAX_ROW."""
    n, k = qweight.shape
    if k > MAX_ROW or not (qweight.is_contiguous() and scale.is_contiguous()):
        raise ValueError(f"the fused step takes contiguous rows of at most {MAX_ROW}, got {tuple(qweight.shape)}")
    b1, b2 = betas
    stochastic = rounding == "stochastic"
    seed = int(torch.randint(2**31 - 1, (1,), generator=generator).item()) if stochastic else 0  # a CPU draw: no device sync
    block = next_power_of_2(k)
    _adamw_int8_kernel[(n,)](qweight, scale, grad, m, v, k, seed, lr, b1, 1 - b1, b2, 1 - b2, eps, 1 - lr * weight_decay, 1 - b1**step, 1 - b2**step,
                             BLOCK=block, STOCHASTIC=stochastic, num_warps=min(16, max(1, block // 256)))


def adamw_int8_step_reference(qweight, scale, grad, m, v, *, step, lr, betas, eps, weight_decay, rounding, generator) -> None:
    b1, b2 = betas
    m.mul_(b1).add_(grad, alpha=1 - b1)
    v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
    m_hat = m / (1 - b1**step)
    v_hat = v / (1 - b2**step)
    w = intfmt.dequantize(qweight, scale, None, "channel") * (1 - lr * weight_decay) - lr * m_hat / (v_hat.sqrt() + eps)
    q = intfmt.quantize(w, 8, granularity="channel", rounding=rounding, generator=generator, validate=False)
    qweight.copy_(q.codes)
    scale.copy_(q.scale.reshape(scale.shape))
