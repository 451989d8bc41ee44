"""W4A16: group-wise int4 weights times 16-bit activations, in Triton.

    out[m, n] = Σ_k x[m, k] · (code[n, k] − z[n, g(k)]) · s[n, g(k)]  (+ bias[n])

The weight is `IntWeightLinear`'s 4-bit storage, read as it is stored: `qweight` uint8 [N, ≥K/2]
with two codes a byte, little-endian nibbles (byte j of a row = code[2j] | code[2j+1] << 4,
`lowbit.formats.packing`), `scale` float [N, K/g], `zero` uint8 [N, K/g] or None (symmetric:
codes are stored with offset 8, so the effective zero is 8), and `g_idx` int [K] or None (the
group of each input column, GPTQ act-order; else column k is in group k // g).

The kernel never builds the float weight in memory. Each program owns a [BLOCK_M, BLOCK_N]
output tile and walks K in steps of BLOCK_K: it loads the x tile [BLOCK_M, BLOCK_K] in x's
dtype and the packed bytes [BLOCK_K/2, BLOCK_N] once; the low nibbles are the weights of the
even input columns and the high nibbles those of the odd ones, so instead of interleaving the
nibbles back it splits the x tile into its even and odd columns (a register reshape) and does
two `tl.dot`s of depth BLOCK_K/2 into one fp32 accumulator. Dequantization, (code − z) · s, is
done in fp32 and rounded once to x's dtype, as `IntWeightLinear.dequantize_weight(x.dtype)`
does. When the K-tile lies inside one group (no g_idx and g a multiple of BLOCK_K) scales and
zeros are one vector per tile; otherwise they are gathered per column. Bias (fp32) and the cast
to x's dtype are the epilogue. For decode (M ≤ 16) with few output tiles K is split across
programs (deterministic: fp32 partials summed afterwards, no atomics).

Registered as the custom op `lowbit::w4a16_matmul` (Triton on CUDA, dequantize-then-`F.linear`
elsewhere or for any input the kernel does not take), with a fake kernel for torch.compile.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..formats import int as intfmt
from ..formats.packing import packed_length
from .tiles import cdiv, grouped_tile, interpreting, next_power_of_2, sm_count, split_k_partials, split_k_plan, sum_split_k

try:
    import triton
    import triton.language as tl
except ImportError:  # lowbit runs without Triton; the op then takes the reference path
    triton = None

BITS = 4
KERNEL_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
_INT32_MAX = 2**31 - 1



if triton is not None:

    @triton.jit
    def _w4a16_kernel(
        x_ptr, q_ptr, s_ptr, z_ptr, gidx_ptr, bias_ptr, c_ptr,
        M, N, K, group_size, k_per_split,
        stride_xm, stride_xk, stride_qn, stride_qk, stride_sn, stride_sg, stride_zn, stride_zg,
        stride_cs, stride_cm, stride_cn,
        HAS_ZERO: tl.constexpr, HAS_GIDX: tl.constexpr, HAS_BIAS: tl.constexpr, TILE_IN_GROUP: tl.constexpr,
        DOT_PRECISION: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
    ):
        HALF_K: tl.constexpr = BLOCK_K // 2
        pid_m, pid_n = grouped_tile(tl.program_id(0), M, N, BLOCK_M, BLOCK_N, GROUP_M)
        pid_k = tl.program_id(1)

        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        offs_kk = tl.arange(0, BLOCK_K)
        offs_j = tl.arange(0, HALF_K)
        m_mask = offs_m < M
        n_mask = offs_n < N
        dtype = x_ptr.dtype.element_ty

        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        k_start = pid_k * k_per_split  # k_per_split is a multiple of BLOCK_K: no tile straddles two splits
        k_end = tl.minimum(K, k_start + k_per_split)
        for k0 in range(k_start, k_end, BLOCK_K):
            offs_k = k0 + offs_kk
            x = tl.load(
                x_ptr + offs_m[:, None] * stride_xm + offs_k[None, :] * stride_xk,
                mask=m_mask[:, None] & (offs_k[None, :] < K), other=0.0,
            )
            # columns k0+2j (low nibbles) and k0+2j+1 (high nibbles); K is even, so both or neither exist
            x_even, x_odd = tl.split(tl.reshape(x, (BLOCK_M, HALF_K, 2)))
            col = k0 + 2 * offs_j
            j_mask = col < K
            wn_mask = j_mask[:, None] & n_mask[None, :]
            # byte offsets as a plain arange (k0 is even): the compiler sees them contiguous and vectorizes the load
            kb = k0 // 2 + offs_j
            b = tl.load(q_ptr + offs_n[None, :] * stride_qn + kb[:, None] * stride_qk, mask=wn_mask, other=0).to(tl.int32)
            lo = (b & 0xF).to(tl.float32)
            hi = ((b >> 4) & 0xF).to(tl.float32)
            if TILE_IN_GROUP:
                g = k0 // group_size
                s = tl.load(s_ptr + offs_n * stride_sn + g * stride_sg, mask=n_mask, other=0.0).to(tl.float32)[None, :]
                if HAS_ZERO:
                    z = tl.load(z_ptr + offs_n * stride_zn + g * stride_zg, mask=n_mask, other=0).to(tl.float32)[None, :]
                else:
                    z = 8.0
                w_lo = (lo - z) * s
                w_hi = (hi - z) * s
            else:
                if HAS_GIDX:
                    g_lo = tl.load(gidx_ptr + col, mask=j_mask, other=0)
                    g_hi = tl.load(gidx_ptr + col + 1, mask=j_mask, other=0)
                else:
                    g_lo = col // group_size
                    g_hi = (col + 1) // group_size
                s_lo = tl.load(s_ptr + offs_n[None, :] * stride_sn + g_lo[:, None] * stride_sg, mask=wn_mask, other=0.0)
                s_hi = tl.load(s_ptr + offs_n[None, :] * stride_sn + g_hi[:, None] * stride_sg, mask=wn_mask, other=0.0)
                if HAS_ZERO:
                    z_lo = tl.load(z_ptr + offs_n[None, :] * stride_zn + g_lo[:, None] * stride_zg, mask=wn_mask, other=0)
                    z_hi = tl.load(z_ptr + offs_n[None, :] * stride_zn + g_hi[:, None] * stride_zg, mask=wn_mask, other=0)
                    w_lo = (lo - z_lo.to(tl.float32)) * s_lo.to(tl.float32)
                    w_hi = (hi - z_hi.to(tl.float32)) * s_hi.to(tl.float32)
                else:
                    w_lo = (lo - 8.0) * s_lo.to(tl.float32)
                    w_hi = (hi - 8.0) * s_hi.to(tl.float32)
            # masked lanes: x is 0 past K, and the scale is 0 past N, so they add exact zeros
            acc = tl.dot(x_even, w_lo.to(dtype), acc, input_precision=DOT_PRECISION)
            acc = tl.dot(x_odd, w_hi.to(dtype), acc, input_precision=DOT_PRECISION)

        if HAS_BIAS:  # added by the first K-split only
            acc += tl.load(bias_ptr + offs_n, mask=n_mask & (pid_k == 0), other=0.0)[None, :]
        c_ptrs = c_ptr + pid_k * stride_cs + offs_m[:, None] * stride_cm + offs_n[None, :] * stride_cn
        tl.store(c_ptrs, acc.to(c_ptr.dtype.element_ty), mask=m_mask[:, None] & n_mask[None, :])


# ----------------------------------------------------------------------------------------------
# checks shared by every path


def _check(x, qweight, scale, zero, g_idx, group_size, bias) -> tuple[int, int, int]:
    """Validate the arguments; return (M, N, K). Raises ValueError naming the bad argument."""
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        raise ValueError(f"x must be a 2-D tensor [M, K], got shape {tuple(getattr(x, 'shape', ()))}")
    if not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor, got {x.dtype}")
    m, k = x.shape
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
        raise ValueError(f"group_size must be a positive integer, got {group_size!r}")
    if k % 2:
        raise ValueError(f"x: the input dim K={k} must be even (two 4-bit codes a byte)")
    if k % group_size:
        raise ValueError(f"group_size {group_size} does not divide the input dim K={k} of x")
    if not isinstance(qweight, torch.Tensor) or qweight.dtype != torch.uint8 or qweight.dim() != 2:
        raise ValueError(f"qweight must be a 2-D uint8 tensor [N, K/2], got {getattr(qweight, 'dtype', type(qweight))} "
                         f"of shape {tuple(getattr(qweight, 'shape', ()))}")
    n = qweight.shape[0]
    widths = {k // 2, packed_length(k, BITS)}
    if qweight.shape[1] not in widths:
        raise ValueError(f"qweight must have {k // 2} bytes a row for K={k} 4-bit codes "
                         f"(or lowbit's padded {packed_length(k, BITS)}), got shape {tuple(qweight.shape)}")
    groups = k // group_size
    if not isinstance(scale, torch.Tensor) or not scale.is_floating_point() or tuple(scale.shape) != (n, groups):
        raise ValueError(f"scale must be a float tensor of shape {(n, groups)} ([N, K/group_size]), "
                         f"got {getattr(scale, 'dtype', type(scale))} of shape {tuple(getattr(scale, 'shape', ()))}")
    if zero is not None and (zero.is_floating_point() or zero.is_complex() or tuple(zero.shape) != (n, groups)):
        raise ValueError(f"zero must be None or an integer tensor of shape {(n, groups)}, got {zero.dtype} of shape {tuple(zero.shape)}")
    if g_idx is not None and (g_idx.is_floating_point() or g_idx.is_complex() or tuple(g_idx.shape) != (k,)):
        raise ValueError(f"g_idx must be None or an integer tensor of shape ({k},), got {g_idx.dtype} of shape {tuple(g_idx.shape)}")
    if bias is not None and tuple(bias.shape) != (n,):
        raise ValueError(f"bias must be None or of shape ({n},), got {tuple(bias.shape)}")
    for name, t in (("qweight", qweight), ("scale", scale), ("zero", zero), ("g_idx", g_idx), ("bias", bias)):
        if t is not None and t.device != x.device:
            raise ValueError(f"{name} is on {t.device} but x is on {x.device}")
    return m, n, k


# ----------------------------------------------------------------------------------------------
# reference


def dequantize_w4(qweight, scale, zero, g_idx, group_size: int, k: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The float weight [N, K] of the packed storage, by `lowbit.formats.int.dequantize`."""
    q = qweight[:, : k // 2]
    codes = torch.stack((q & 0xF, q >> 4), dim=-1).reshape(q.shape[0], k).to(torch.int16)
    if zero is None:
        codes = codes - 2 ** (BITS - 1)  # symmetric codes are stored with offset 8
    return intfmt.dequantize(codes, scale, zero, "group", group_size, dtype, g_idx)


def w4a16_matmul_reference(x2d, qweight, scale, zero, g_idx, group_size: int, bias=None) -> torch.Tensor:
    """Dequantize, then `F.linear` in x's dtype: what `IntWeightLinear.forward` computes."""
    _, _, k = _check(x2d, qweight, scale, zero, g_idx, group_size, bias)
    w = dequantize_w4(qweight, scale, zero, g_idx, group_size, k, x2d.dtype)
    return F.linear(x2d, w, None if bias is None else bias.to(x2d.dtype))


# ----------------------------------------------------------------------------------------------
# Triton launcher

def _sm_count(device: torch.device) -> int:
    return sm_count(device) if device.type == "cuda" else 132


def _pow2_floor(v: int) -> int:
    return 1 << (v.bit_length() - 1)


def _config(m: int, n: int, k: int, group_size: int, has_g_idx: bool, sm_count: int = 132) -> dict:
    """Tile sizes. Decode (M ≤ 16) is bound by reading the weight: one 16-row tile, deep K-tiles and
    split-K when there are too few output tiles to fill the SMs. Prefill is bound by the MMAs:
    64-128 square-ish tiles. BLOCK_K shrinks to the group size (a power of two ≥ 32) so that scales
    are one vector per tile. The interpreter gets small tiles: each program there is Python."""
    if interpreting():
        bm, bn, bk, warps, stages = 16, 32, 32, 4, 1
    elif m <= 16:
        bm, bn, bk, warps, stages = 16, 64, 128, 4, 4
    elif m <= 64:
        bm, bn, bk, warps, stages = max(32, next_power_of_2(m)), 128, 64, 4, 4
    else:
        bm, bn, bk, warps, stages = 128, 128, 64, 8, 3
    if not has_g_idx and group_size % bk and group_size >= 32 and group_size == _pow2_floor(group_size):
        bk = group_size
    bk = min(bk, max(32, next_power_of_2(k)))
    bn = min(bn, max(16, next_power_of_2(n)))
    split = 1
    if m <= 16 and not interpreting():
        tiles = cdiv(n, bn)
        k_tiles = cdiv(k, bk)
        split = max(1, min(16, (2 * sm_count) // tiles, k_tiles // 4))
    return dict(BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, GROUP_M=8, SPLIT_K=split, num_warps=warps, num_stages=stages)


def _kernel_takes(x, qweight, scale, zero, g_idx, bias) -> bool:
    """Whether the Triton kernel can take these (already validated) inputs; else the reference."""
    if triton is None or x.dtype not in KERNEL_DTYPES:
        return False
    m, k = x.shape
    n = qweight.shape[0]
    # the kernel's offsets are int32 products: every element it addresses must lie below 2^31
    # (with room for a tile's overhang); 16 partial-sum buffers at most under split-K
    def span(t):
        return sum((d - 1) * abs(s) for s, d in zip(t.stride(), t.shape)) + 1 if t.numel() else 0

    tensors = [t for t in (x, qweight, scale, zero, g_idx) if t is not None]
    if any(span(t) > _INT32_MAX // 2 for t in tensors) or 16 * m * n > _INT32_MAX // 2:
        return False
    return m > 0 and n > 0


def w4a16_matmul_triton(
    x2d: torch.Tensor,
    qweight: torch.Tensor,
    scale: torch.Tensor,
    zero: torch.Tensor | None,
    g_idx: torch.Tensor | None,
    group_size: int,
    bias: torch.Tensor | None = None,
    *,
    config: dict | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """x2d [M, K] (fp16/bf16/fp32, any strides) @ dequantized Wᵀ (+ bias) → [M, N] in x's dtype.

    `config` overrides the heuristic's tile sizes (keys of `_config`); `out` is written in place
    (an [M, N] tensor of x's dtype). Works on CPU tensors under TRITON_INTERPRET=1."""
    if triton is None:
        raise RuntimeError("w4a16_matmul_triton needs triton")
    m, n, k = _check(x2d, qweight, scale, zero, g_idx, group_size, bias)
    if x2d.dtype not in KERNEL_DTYPES:
        raise ValueError(f"x must be float16, bfloat16 or float32 for the kernel, got {x2d.dtype}")
    if out is None:
        out = torch.empty(m, n, device=x2d.device, dtype=x2d.dtype)
    elif out.shape != (m, n) or out.dtype != x2d.dtype or out.device != x2d.device:
        raise ValueError(f"out must be a {x2d.dtype} tensor of shape {(m, n)} on {x2d.device}, got {out.dtype} {tuple(out.shape)} on {out.device}")
    if m == 0 or n == 0:
        return out
    cfg = dict(_config(m, n, k, group_size, g_idx is not None, _sm_count(x2d.device)))
    if config:
        cfg.update(config)
    bm, bn, bk, split = cfg["BLOCK_M"], cfg["BLOCK_N"], cfg["BLOCK_K"], cfg.pop("SPLIT_K")
    if bk < 32 or bk & (bk - 1) or bm < 16 or bn < 16:
        raise ValueError(f"config: BLOCK_K must be a power of two >= 32 and BLOCK_M, BLOCK_N >= 16, got {cfg}")
    k_per_split, split = split_k_plan(k, bk, int(split))
    dst = split_k_partials(out, split)
    stride_cs = 0 if split == 1 else dst.stride(0)
    stride_cm, stride_cn = dst.stride(-2), dst.stride(-1)

    scale_ = scale if scale.dtype == torch.float32 else scale.float()
    gidx_ = None if g_idx is None else g_idx.to(torch.int32)
    bias_ = None if bias is None else bias.float().contiguous()
    tile_in_group = g_idx is None and group_size % bk == 0
    grid = (cdiv(m, bm) * cdiv(n, bn), split)
    _w4a16_kernel[grid](
        x2d, qweight, scale_, zero if zero is not None else qweight, gidx_ if gidx_ is not None else qweight,
        bias_ if bias_ is not None else scale_, dst,
        m, n, k, group_size, k_per_split,
        x2d.stride(0), x2d.stride(1), qweight.stride(0), qweight.stride(1), scale_.stride(0), scale_.stride(1),
        zero.stride(0) if zero is not None else 0, zero.stride(1) if zero is not None else 0,
        stride_cs, stride_cm, stride_cn,
        HAS_ZERO=zero is not None, HAS_GIDX=gidx_ is not None, HAS_BIAS=bias_ is not None,
        TILE_IN_GROUP=tile_in_group, DOT_PRECISION="ieee" if x2d.dtype == torch.float32 else "tf32",
        **cfg,
    )
    return sum_split_k(out, dst)


# ----------------------------------------------------------------------------------------------
# custom op and the public function


@torch.library.custom_op("lowbit::w4a16_matmul", mutates_args=())
def w4a16_matmul(
    x: torch.Tensor,
    qweight: torch.Tensor,
    scale: torch.Tensor,
    zero: torch.Tensor | None,
    g_idx: torch.Tensor | None,
    group_size: int,
    bias: torch.Tensor | None,
) -> torch.Tensor:
    """x [M, K] @ the int4 group-wise weight [N, K]ᵀ (+ bias) → [M, N] in x's dtype: the Triton
    kernel on CUDA for the inputs it takes, dequantize-then-`F.linear` otherwise."""
    _check(x, qweight, scale, zero, g_idx, group_size, bias)
    if x.is_cuda and _kernel_takes(x, qweight, scale, zero, g_idx, bias):
        return w4a16_matmul_triton(x, qweight, scale, zero, g_idx, group_size, bias)
    return w4a16_matmul_reference(x, qweight, scale, zero, g_idx, group_size, bias)


@w4a16_matmul.register_fake
def _(x, qweight, scale, zero, g_idx, group_size, bias):
    return x.new_empty(x.shape[0], qweight.shape[0])


def w4a16_linear(
    x: torch.Tensor,
    qweight: torch.Tensor,
    scale: torch.Tensor,
    zero: torch.Tensor | None,
    g_idx: torch.Tensor | None,
    group_size: int,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """F.linear for `IntWeightLinear`'s 4-bit group-wise storage: x [..., K] → [..., N]."""
    if x.dim() < 1:
        raise ValueError("x must have at least one dimension [..., K]")
    out = w4a16_matmul(x.reshape(-1, x.shape[-1]), qweight, scale, zero, g_idx, group_size, bias)
    return out.reshape(*x.shape[:-1], qweight.shape[0])
