"""Tile-scaled INT8 / FP8 matmul (DeepSeek-V3 style) and the quantizers that make its scales.

Activations carry one scale per 1×128 tile along K, weights one per 128×128 block:
    a [M, K] codes, scale_a [M, ⌈K/128⌉];   b [N, K] codes, scale_b [⌈N/128⌉, ⌈K/128⌉]
    out[m, n] = Σ_kb (a[m, kb] · b[n, kb]) · scale_a[m, kb] · scale_b[n // 128, kb]   (+ bias[n])
Each K-block's dot product is exact for int8 (int32) and as exact as the tensor cores make it for
FP8 (fp32 out); it is promoted to fp32, scaled, and accumulated in fp32 — the promotion every 128
columns is what keeps Hopper's reduced-precision FP8 accumulation honest. One kernel serves both
code types; operands go by strides, so any layout is a view.

The quantizers follow `lowbit.formats` (absmax per tile; int8: symmetric ±127, round half to even;
FP8 E4M3: scale = absmax / 448, round to nearest even on the E4M3 grid). Their Triton kernel
(1×TILE row tiles, CUDA) is also the fused per-token FP8 quantizer of `ops.fp8` (TILE = K).
Registered as `lowbit::tile_scaled_mm` and `lowbit::quantize_tiles`; CPU tensors take the
torch reference path.
"""

from __future__ import annotations

import torch

from ..formats import fp
from ..formats import int as intfmt
from .int8 import _mm_config
from .tiles import cdiv, grouped_tile, interpreting, next_power_of_2

try:
    import triton
    import triton.language as tl

    from .rows_cols import abs_max, absmax_scale, codes
except ImportError:  # lowbit runs without Triton; the ops then take the reference path
    triton = None

TILE = 128
FORMATS = {"int8": torch.int8, "e4m3": torch.float8_e4m3fn}
MAX_TILE = 16384  # one tile per program, held in registers
_TINY = torch.finfo(torch.float32).tiny


def code_format(dtype: torch.dtype) -> str:
    for name, d in FORMATS.items():
        if d == dtype:
            return name
    raise ValueError(f"codes must be int8 or float8_e4m3fn, got {dtype}")


if triton is not None:

    @triton.jit
    def _quantize_tiles_kernel(
        x_ptr, q_ptr, s_ptr, N, tile, stride_xm, stride_qm, stride_sm,
        FP8: tl.constexpr, BLOCK: tl.constexpr, EMULATE_FP8: tl.constexpr,
    ):
        row = tl.program_id(0)
        t = tl.program_id(1)
        cols = tl.arange(0, BLOCK)
        offs = t * tile + cols
        mask = (cols < tile) & (offs < N)
        x = tl.load(x_ptr + row * stride_xm + offs, mask=mask, other=0.0).to(tl.float32)
        amax = abs_max(x, 0)
        # IEEE-rounded divisions (plain / is approximate on the GPU), so scales and codes equal lowbit.formats'
        scale = absmax_scale(amax, FP8)
        q = codes(x, scale, 0.0, FP8, False, EMULATE_FP8)
        tl.store(q_ptr + row * stride_qm + offs, q, mask=mask)
        tl.store(s_ptr + row * stride_sm + t, scale)

    @triton.jit
    def _tile_scaled_mm_kernel(
        a_ptr, b_ptr, c_ptr, sa_ptr, sb_ptr, bias_ptr,
        M, N, K,
        stride_am, stride_ak, stride_bn, stride_bk, stride_cm, stride_cn,
        stride_sam, stride_sak, stride_sbn, stride_sbk,
        SCALE_TILE: tl.constexpr, IS_INT: tl.constexpr, HAS_BIAS: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
    ):
        pid_m, pid_n = grouped_tile(tl.program_id(0), M, N, BLOCK_M, BLOCK_N, GROUP_M)

        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        offs_k = tl.arange(0, BLOCK_K)
        m_mask = offs_m < M
        n_mask = offs_n < N
        a_ptrs = a_ptr + offs_m[:, None] * stride_am + offs_k[None, :] * stride_ak
        b_ptrs = b_ptr + offs_k[:, None] * stride_bk + offs_n[None, :] * stride_bn
        sa_ptrs = sa_ptr + offs_m * stride_sam
        sb_ptrs = sb_ptr + (offs_n // SCALE_TILE) * stride_sbn
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for k in range(0, tl.cdiv(K, BLOCK_K)):
            k_left = K - k * BLOCK_K
            a_mask = m_mask[:, None] & (offs_k[None, :] < k_left)
            b_mask = (offs_k[:, None] < k_left) & n_mask[None, :]
            if IS_INT:
                a = tl.load(a_ptrs, mask=a_mask, other=0)
                b = tl.load(b_ptrs, mask=b_mask, other=0)
                part = tl.dot(a, b, out_dtype=tl.int32).to(tl.float32)  # exact: |part| <= 128·127² < 2^24
            else:
                a = tl.load(a_ptrs, mask=a_mask, other=0.0)
                b = tl.load(b_ptrs, mask=b_mask, other=0.0)
                part = tl.dot(a, b, out_dtype=tl.float32)
            kb = (k * BLOCK_K) // SCALE_TILE  # BLOCK_K divides SCALE_TILE: a K-block never straddles two tiles
            sa = tl.load(sa_ptrs + kb * stride_sak, mask=m_mask, other=0.0)
            sb = tl.load(sb_ptrs + kb * stride_sbk, mask=n_mask, other=0.0)
            acc += part * sa[:, None] * sb[None, :]
            a_ptrs += BLOCK_K * stride_ak
            b_ptrs += BLOCK_K * stride_bk

        if HAS_BIAS:
            acc += tl.load(bias_ptr + offs_n, mask=n_mask, other=0.0)[None, :]
        c_ptrs = c_ptr + offs_m[:, None] * stride_cm + offs_n[None, :] * stride_cn
        tl.store(c_ptrs, acc.to(c_ptr.dtype.element_ty), mask=m_mask[:, None] & n_mask[None, :])


# ----------------------------------------------------------------------------------------------
# quantizers


def quantize_tiles_reference(x: torch.Tensor, fmt: str = "int8", tile: int = TILE) -> tuple[torch.Tensor, torch.Tensor]:
    """Absmax codes of x [M, K] with one scale per 1×tile row tile: (codes [M, K], scale [M, ⌈K/tile⌉] fp32).
    By `lowbit.formats`: a ragged last tile is zero-padded, which leaves its absmax unchanged."""
    _check_fmt(fmt)
    m, k = x.shape
    tiles = cdiv(k, tile)
    xp = torch.nn.functional.pad(x.detach().float(), (0, tiles * tile - k)).reshape(m, tiles, tile)
    if fmt == "int8":
        q = intfmt.quantize(xp, 8, granularity="token", validate=False)
        codes, scale = q.codes, q.scale
    else:
        codes, scale = fp.quantize_fp8(xp, "e4m3", "token", validate=False)
    codes = codes.reshape(m, tiles * tile)
    return (codes if tiles * tile == k else codes[:, :k].contiguous()), scale.reshape(m, tiles)


def quantize_tiles_triton(x: torch.Tensor, fmt: str = "int8", tile: int = TILE) -> tuple[torch.Tensor, torch.Tensor]:
    """The same codes and scales in one pass (one program per row tile); `tile` ≤ 16384."""
    _check_fmt(fmt)
    if triton is None:
        raise RuntimeError("quantize_tiles_triton needs triton")
    if x.dim() != 2 or not x.is_floating_point():
        raise ValueError(f"x must be a 2-D float tensor, got {x.dtype} of shape {tuple(x.shape)}")
    m, k = x.shape
    if not 1 <= tile <= MAX_TILE:
        raise ValueError(f"tile must be in 1..{MAX_TILE}, got {tile}")
    if x.stride(1) != 1:
        x = x.contiguous()
    tiles = max(1, cdiv(k, tile))
    q = torch.empty(m, k, device=x.device, dtype=FORMATS[fmt])
    s = torch.empty(m, tiles, device=x.device, dtype=torch.float32)
    if m == 0:
        return q, s
    block = next_power_of_2(min(tile, max(k, 1)))
    _quantize_tiles_kernel[(m, tiles)](
        x, q, s, k, tile, x.stride(0), q.stride(0), s.stride(0),
        FP8=fmt == "e4m3", BLOCK=block, EMULATE_FP8=interpreting(), num_warps=min(16, max(1, block // 256)),
    )
    return q, s


def _check_fmt(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {sorted(FORMATS)}, got {fmt!r}")


@torch.library.custom_op("lowbit::quantize_tiles", mutates_args=())
def quantize_tiles(x: torch.Tensor, fmt: str = "int8", tile: int = TILE) -> tuple[torch.Tensor, torch.Tensor]:
    """Activations: codes [M, K] and one fp32 scale per 1×tile tile, [M, ⌈K/tile⌉]; Triton on CUDA."""
    if triton is not None and x.is_cuda and tile <= MAX_TILE:
        return quantize_tiles_triton(x, fmt, tile)
    return quantize_tiles_reference(x, fmt, tile)


@quantize_tiles.register_fake
def _(x, fmt="int8", tile=TILE):
    _check_fmt(fmt)
    return x.new_empty(x.shape, dtype=FORMATS[fmt]), x.new_empty(x.shape[0], cdiv(x.shape[1], tile), dtype=torch.float32)


def quantize_blocks(w: torch.Tensor, fmt: str = "int8", block: int = TILE) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights: codes [N, K] and one fp32 scale per block×block block, [⌈N/block⌉, ⌈K/block⌉]
    (offline, torch only). Ragged edge blocks are zero-padded for their absmax."""
    _check_fmt(fmt)
    if w.dim() != 2:
        raise ValueError(f"w must be 2-D [N, K], got shape {tuple(w.shape)}")
    n, k = w.shape
    nb, kb = cdiv(n, block), cdiv(k, block)
    wp = torch.nn.functional.pad(w.detach().float(), (0, kb * block - k, 0, nb * block - n))
    blocks = wp.reshape(nb, block, kb, block).permute(0, 2, 1, 3).reshape(nb, kb, block * block)
    if fmt == "int8":
        q = intfmt.quantize(blocks, 8, granularity="token")
        codes, scale = q.codes, q.scale
    else:
        codes, scale = fp.quantize_fp8(blocks, "e4m3", "token")
    codes = codes.reshape(nb, kb, block, block).permute(0, 2, 1, 3).reshape(nb * block, kb * block)
    return codes[:n, :k].contiguous(), scale.reshape(nb, kb)


def dequantize_tiles(codes: torch.Tensor, scale: torch.Tensor, rows_per_scale: int = 1, tile: int = TILE) -> torch.Tensor:
    """float32 values of codes [R, K] whose scale [⌈R/rows_per_scale⌉, ⌈K/tile⌉] covers rows_per_scale×tile
    blocks (1 for activation tiles, 128 for weight blocks)."""
    r, k = codes.shape
    s = scale.float().repeat_interleave(rows_per_scale, 0)[:r].repeat_interleave(tile, 1)[:, :k]
    return codes.float() * s


# ----------------------------------------------------------------------------------------------
# matmul


def _check_mm(a, b, scale_a, scale_b, bias) -> None:
    if a.dtype != b.dtype or a.dtype not in FORMATS.values():
        raise ValueError(f"a and b must both be int8 or both float8_e4m3fn, got {a.dtype} and {b.dtype}")
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"a [M, K] and b [N, K] must agree on K, got {tuple(a.shape)} and {tuple(b.shape)}")
    (m, k), n = a.shape, b.shape[0]
    kt, nt = cdiv(k, TILE), cdiv(n, TILE)
    if tuple(scale_a.shape) != (m, kt):
        raise ValueError(f"scale_a must be [M, ⌈K/{TILE}⌉] = {(m, kt)}, got {tuple(scale_a.shape)}")
    if tuple(scale_b.shape) != (nt, kt):
        raise ValueError(f"scale_b must be [⌈N/{TILE}⌉, ⌈K/{TILE}⌉] = {(nt, kt)}, got {tuple(scale_b.shape)}")
    if bias is not None and tuple(bias.shape) != (n,):
        raise ValueError(f"bias must be of shape ({n},), got {tuple(bias.shape)}")


def tile_scaled_mm_reference(
    a: torch.Tensor, b: torch.Tensor, scale_a: torch.Tensor, scale_b: torch.Tensor,
    bias: torch.Tensor | None = None, out_dtype: torch.dtype = torch.bfloat16,
) -> torch.Tensor:
    """The kernel's arithmetic in torch: per K-tile a float32 dot of the codes (exact for int8:
    |partial| < 2^24), scaled and summed in float32."""
    _check_mm(a, b, scale_a, scale_b, bias)
    (m, k), n = a.shape, b.shape[0]
    sb = scale_b.float().repeat_interleave(TILE, 0)[:n]  # [N, K-tiles]
    out = torch.zeros(m, n, device=a.device, dtype=torch.float32)
    for t, k0 in enumerate(range(0, k, TILE)):
        part = a[:, k0 : k0 + TILE].float() @ b[:, k0 : k0 + TILE].float().t()
        out += part * scale_a[:, t : t + 1].float() * sb[:, t][None, :]
    if bias is not None:
        out += bias.float()
    return out.to(out_dtype)


def tile_scaled_mm_triton(
    a: torch.Tensor, b: torch.Tensor, scale_a: torch.Tensor, scale_b: torch.Tensor,
    bias: torch.Tensor | None = None, out_dtype: torch.dtype = torch.bfloat16,
) -> torch.Tensor:
    """a [M, K] @ b [N, K]ᵀ (any strides; both int8 or both e4m3) with tile scales → [M, N] out_dtype."""
    if triton is None:
        raise RuntimeError("tile_scaled_mm_triton needs triton")
    _check_mm(a, b, scale_a, scale_b, bias)
    (m, k), n = a.shape, b.shape[0]
    out = torch.empty(m, n, device=a.device, dtype=out_dtype)
    if m == 0 or n == 0:
        return out
    cfg = _mm_config(m, n, k)
    # two fp32 tiles live at once (the K-block's dot and the running sum): at most 128×128 of each
    cfg["BLOCK_N"] = min(cfg["BLOCK_N"], 128)
    assert TILE % cfg["BLOCK_K"] == 0
    grid = (cdiv(m, cfg["BLOCK_M"]) * cdiv(n, cfg["BLOCK_N"]),)
    sa, sb = scale_a.float(), scale_b.float()
    _tile_scaled_mm_kernel[grid](
        a, b, out, sa, sb, bias.float().contiguous() if bias is not None else sa,
        m, n, k,
        a.stride(0), a.stride(1), b.stride(0), b.stride(1), out.stride(0), out.stride(1),
        sa.stride(0), sa.stride(1), sb.stride(0), sb.stride(1),
        SCALE_TILE=TILE, IS_INT=a.dtype == torch.int8, HAS_BIAS=bias is not None, **cfg,
    )
    return out


def _fp8_capable(device: torch.device) -> bool:
    return torch.cuda.get_device_capability(device) >= (8, 9)


@torch.library.custom_op("lowbit::tile_scaled_mm", mutates_args=())
def tile_scaled_mm(
    a: torch.Tensor, b: torch.Tensor, scale_a: torch.Tensor, scale_b: torch.Tensor,
    bias: torch.Tensor | None = None, out_dtype: torch.dtype = torch.bfloat16,
) -> torch.Tensor:
    """Σ_kb (a_kb @ b_kbᵀ) · scale_a · scale_b (+ bias): Triton on CUDA (FP8 from sm_89), torch elsewhere."""
    if triton is not None and a.is_cuda and b.is_cuda and (a.dtype == torch.int8 or _fp8_capable(a.device)):
        return tile_scaled_mm_triton(a, b, scale_a, scale_b, bias, out_dtype)
    return tile_scaled_mm_reference(a, b, scale_a, scale_b, bias, out_dtype)


@tile_scaled_mm.register_fake
def _(a, b, scale_a, scale_b, bias=None, out_dtype=torch.bfloat16):
    return a.new_empty(a.shape[0], b.shape[0], dtype=out_dtype)


__all__ = ["TILE", "quantize_tiles", "quantize_blocks", "dequantize_tiles", "tile_scaled_mm"]
