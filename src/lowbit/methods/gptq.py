"""GPTQ (Frantar et al. 2023): quantize a weight column by column, pushing each column's rounding
error onto the columns not yet quantized, weighted by the inverse Hessian of the layer's
reconstruction loss ‖WX − ŴX‖², H = 2XXᵀ.

The paper's three steps are all here: an arbitrary (fixed or act-order) column order shared by
every row; lazy batch updates (blocks of 128 columns, the rest updated once per block); and the
upper Cholesky factor of H⁻¹ in place of repeated inverse updates. Codes use the same affine
integer definition as RTN (`formats.int`) and are stored in `IntWeightLinear`.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..formats import int as intfmt
from ..layers import IntWeightLinear
from .observers import in_features


@dataclass(frozen=True)
class GPTQ:
    """GPTQ weight quantization; needs calibration data (see `lowbit.quantize(..., calibration=)`)."""

    bits: int = 4
    group_size: int = 128  # -1: one scale per output channel
    symmetric: bool = False
    act_order: bool = False  # columns in order of decreasing diag(H)
    static_groups: bool = False  # with act_order: group parameters from the original contiguous groups
    block_size: int = 128
    damp: float = 0.01  # fraction of the mean diagonal of H added to it

    def __post_init__(self):
        intfmt.check_bits(self.bits)
        if self.group_size != -1 and self.group_size < 1:
            raise ValueError(f"group_size must be -1 (per channel) or a positive integer, got {self.group_size}")
        if self.block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {self.block_size}")
        if not self.damp > 0:
            raise ValueError(f"damp must be > 0, got {self.damp}")
        if self.static_groups and not self.act_order:
            raise ValueError("static_groups only applies with act_order=True")

    needs_calibration = True

    def observer(self, module: nn.Module) -> "HessianObserver":
        return HessianObserver(in_features(module), module.weight.device)

    def layer_from_observer(self, weight: torch.Tensor, bias: torch.Tensor | None, obs: "HessianObserver") -> nn.Module:
        return self.layer_from_hessian(weight, bias, obs.hessian)

    def layer_from_hessian(self, weight: torch.Tensor, bias: torch.Tensor | None, hessian: torch.Tensor) -> nn.Module:
        r = gptq_quantize(weight, hessian, self)
        cfg = dict(bits=self.bits, symmetric=self.symmetric)
        if self.group_size == -1:
            cfg.update(granularity="channel", group_size=None)
        else:
            cfg.update(granularity="group", group_size=self.group_size)
        return IntWeightLinear.from_codes(r.codes, r.scale, r.zero, bias, g_idx=r.g_idx, **cfg).to(weight.device)

    def config(self) -> dict:
        return asdict(self)


@dataclass
class GPTQResult:
    codes: torch.Tensor  # [out, in] in the original column order: int8 (symmetric) or uint8
    scale: torch.Tensor  # [out, n_groups] (or [out, 1] per channel)
    zero: torch.Tensor | None  # same shape, uint8
    g_idx: torch.Tensor | None  # [in] group of each column, when groups are not contiguous
    damp: float  # the dampening actually used (raised if the Cholesky factorisation failed)


class HessianObserver:
    """Running mean of 2·x xᵀ over calibration tokens: H ← (n·H + 2·XᵀX) / (n + m)."""

    def __init__(self, in_features: int, device: torch.device):
        self.hessian = torch.zeros(in_features, in_features, device=device)
        self.count = 0

    def update(self, x: torch.Tensor) -> None:
        x = x.reshape(-1, x.shape[-1]).float()
        m = x.shape[0]
        self.hessian.mul_(self.count / (self.count + m))
        self.hessian.addmm_(x.t(), x, alpha=2.0 / (self.count + m))
        self.count += m


def inverse_hessian_factor(hessian: torch.Tensor, damp: float) -> tuple[torch.Tensor, float]:
    """Upper Cholesky factor of (H + λI)⁻¹ with λ = damp·mean(diag H); if H is not positive
    definite enough, λ is raised tenfold (with a warning) until the factorisation succeeds."""
    n = hessian.shape[0]
    mean_diag = torch.diag(hessian).mean().item()
    eye = torch.eye(n, device=hessian.device, dtype=hessian.dtype)
    attempts = 8
    for attempt in range(attempts):
        h = hessian + (damp * mean_diag) * eye
        chol, info = torch.linalg.cholesky_ex(h)
        if info == 0:
            inv = torch.cholesky_inverse(chol)
            upper, info = torch.linalg.cholesky_ex(inv, upper=True)
            if info == 0:
                return upper, damp
        if attempt == attempts - 1:
            break
        warnings.warn(f"GPTQ: Cholesky factorisation failed with damp={damp:g}; retrying with damp={damp * 10:g}", stacklevel=3)
        damp *= 10
    raise ValueError(f"GPTQ: the Hessian is not positive definite even with damp={damp:g}; check the calibration data")


def gptq_quantize(weight: torch.Tensor, hessian: torch.Tensor, cfg: GPTQ) -> GPTQResult:
    """Quantize weight [out, in] given the Hessian [in, in] of its inputs."""
    intfmt.check_finite(weight, "weight")
    W = weight.detach().float().clone()
    H = hessian.detach().float().clone()
    rows, n = W.shape
    g = n if cfg.group_size == -1 else cfg.group_size
    if n % g:
        raise ValueError(f"group_size {cfg.group_size} does not divide the input dim {n}")
    dead = torch.diag(H) == 0  # inputs that were always zero: their columns cannot matter
    H[dead, dead] = 1.0
    W[:, dead] = 0.0

    static = None
    if cfg.static_groups:
        static = [intfmt.affine_params(W[:, i : i + g], cfg.bits, cfg.symmetric) for i in range(0, n, g)]
    perm = torch.argsort(torch.diag(H), descending=True) if cfg.act_order else torch.arange(n, device=W.device)
    W, H = W[:, perm], H[perm][:, perm]
    order = perm.tolist()  # host copy: the column loop must not sync with the device
    Hinv, damp = inverse_hessian_factor(H, cfg.damp)

    codes = torch.zeros_like(W)
    n_groups = n // g
    scale = torch.zeros(rows, n_groups, device=W.device)
    zero = None if cfg.symmetric else torch.zeros(rows, n_groups, device=W.device)
    group_of = torch.zeros(n, dtype=torch.long, device=W.device)  # group of each permuted column
    params = None
    for i1 in range(0, n, cfg.block_size):
        i2 = min(i1 + cfg.block_size, n)
        W1 = W[:, i1:i2].clone()
        Err = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        for i in range(i2 - i1):
            col = i1 + i
            if static is not None:
                gi = order[col] // g
                params = static[gi]
            elif col % g == 0:
                gi = col // g
                end = col + g  # the group's current values: past this block, add the block's pending updates
                beyond = W[:, i2:end] - Err[:, :i] @ Hinv[i1 : i1 + i, i2:end] if end > i2 else W[:, :0]
                window = torch.cat([W1[:, i : i + g], beyond], dim=1)
                params = intfmt.affine_params(window, cfg.bits, cfg.symmetric)
            s, z = params
            scale[:, gi] = s
            if zero is not None:
                zero[:, gi] = z
            group_of[col] = gi
            w = W1[:, i]
            q = intfmt.quantize_with(w, s, z, cfg.bits, cfg.symmetric)
            codes[:, col] = q
            dq = (q if z is None else q - z) * s
            err = (w - dq) / Hinv1[i, i]
            W1[:, i:] -= err[:, None] * Hinv1[i, i:][None, :]
            Err[:, i] = err
        W[:, i2:] -= Err @ Hinv[i1:i2, i2:]

    inv = torch.argsort(perm)
    codes = codes[:, inv]
    g_idx = group_of[inv] if cfg.act_order and cfg.group_size != -1 else None
    if g_idx is not None and torch.equal(g_idx, torch.arange(n, device=W.device) // g):
        g_idx = None  # contiguous after all: no index needed
    return GPTQResult(
        codes=codes.to(torch.int8 if cfg.symmetric else torch.uint8),
        scale=scale,
        zero=None if zero is None else zero.to(torch.uint8),
        g_idx=g_idx,
        damp=damp,
    )
