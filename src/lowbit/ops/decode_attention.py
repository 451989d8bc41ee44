"""Attention for a decode step: one query token a sequence against a KV cache, the cache's length split among
programs (split-KV, as flash-decoding does), so that a batch of one still fills the GPU.

Why: in the 7B decode step (H200, session 19) cuDNN's SDPA took 8.3 µs a layer for one query over a 256-slot static
cache, ~10 % of W4A16's step: it runs one program a head, 32 programs on 132 SMs, each reading its head's whole cache.
Here each (sequence, head) has SPLITS programs, each an online softmax over its slice of the cache (every SPLITS-th
block of slots); the last of them to finish (a counter, `tiles.tile_counters`) merges the slices' partial sums. K and
V are read once a query head (the query heads of a group re-read their K/V head from the L2). Masked slots (a static
cache's empty ones) get no weight.

    out = decode_attention(q, k, v, mask, scale)   # q [B, H, 1, D], k, v [B, Hkv, L, D], mask [B, 1, 1, L] bool or None
"""

from __future__ import annotations

import math

import torch

from .tiles import cdiv, interpreting, next_power_of_2, sm_count, tile_counters

try:
    import triton
    import triton.language as tl
except ImportError:  # the op takes the reference path
    triton = None


if triton is not None:

    @triton.jit
    def _decode_attention_kernel(
        q_ptr, k_ptr, v_ptr, mask_ptr, part_ptr, out_ptr, count_ptr, H, GROUP, L, scale,
        sqb, sqh, skb, skh, skl, svb, svh, svl, smb, sml, sob, soh,
        HAS_MASK: tl.constexpr, D: tl.constexpr, BLOCK_L: tl.constexpr, SPLITS: tl.constexpr,
    ):
        """Program (b·H + h, split): softmax(q·kᵀ·scale) v over the cache's blocks of BLOCK_L slots split, split +
        SPLITS, split + 2·SPLITS, … (interleaved, not a contiguous range each: a static cache's attended slots are its
        first ones, so with a short context in a long cache a contiguous first slice held all of them), as a running
        max m, a sum of weights l and a weighted sum of v rows (fp32), written to part; the last split of (b, h) to
        finish merges the SPLITS partials by their maxima. A slice with every slot masked has m = -inf and weight 0."""
        bh = tl.program_id(0)
        split = tl.program_id(1)
        b = bh // H
        h = bh % H
        offs_d = tl.arange(0, D)
        q = tl.load(q_ptr + b * sqb + h * sqh + offs_d).to(tl.float32) * scale
        k_base = k_ptr + b * skb + (h // GROUP) * skh
        v_base = v_ptr + b * svb + (h // GROUP) * svh
        m_i = tl.full((), float("-inf"), tl.float32)
        l_i = tl.zeros((), dtype=tl.float32)
        acc = tl.zeros((D,), dtype=tl.float32)
        for l0 in range(split * BLOCK_L, L, SPLITS * BLOCK_L):
            offs_l = l0 + tl.arange(0, BLOCK_L)
            ok = offs_l < L
            if HAS_MASK:
                ok = ok & (tl.load(mask_ptr + b * smb + offs_l * sml, mask=ok, other=0) != 0)
            # k and v only where attended: a static cache's unwritten slots cost no traffic (its length may be many times
            # the context's), and whatever they hold, NaN included, never reaches the output (0 · NaN is NaN). Loading k
            # without waiting for the mask made no difference in the 7B step (221.7 against 221.3 µs, session 20)
            k = tl.load(k_base + offs_l[:, None] * skl + offs_d[None, :], mask=ok[:, None], other=0.0).to(tl.float32)
            s = tl.where(ok, tl.sum(k * q[None, :], axis=1), float("-inf"))
            m_new = tl.maximum(m_i, tl.max(s, axis=0))
            m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)  # nothing seen yet: every weight 0, no inf - inf
            alpha = tl.exp(m_i - m_safe)
            p = tl.exp(s - m_safe)
            v = tl.load(v_base + offs_l[:, None] * svl + offs_d[None, :], mask=ok[:, None], other=0.0).to(tl.float32)
            l_i = l_i * alpha + tl.sum(p, axis=0)
            acc = acc * alpha + tl.sum(p[:, None] * v, axis=0)
            m_i = m_new
        part = part_ptr + (bh * SPLITS + split) * (D + 2)
        tl.store(part + offs_d, acc)
        tl.store(part + D, m_i)
        tl.store(part + D + 1, l_i)
        tl.debug_barrier()  # every thread's partial is written before the counter says so
        done = tl.atomic_add(count_ptr + bh, 1, sem="acq_rel", scope="gpu")
        if done == SPLITS - 1:
            offs_s = tl.arange(0, SPLITS)
            parts = part_ptr + (bh * SPLITS + offs_s) * (D + 2)
            ms = tl.load(parts + D, cache_modifier=".cg")
            ls = tl.load(parts + D + 1, cache_modifier=".cg")
            accs = tl.load(parts[:, None] + offs_d[None, :], cache_modifier=".cg")
            m = tl.max(ms, axis=0)
            w = tl.where(ms == float("-inf"), 0.0, tl.exp(ms - tl.where(m == float("-inf"), 0.0, m)))
            out = tl.sum(w[:, None] * accs, axis=0) / tl.sum(w * ls, axis=0)  # every slot masked: 0 / 0, as SDPA's NaN
            tl.store(out_ptr + b * sob + h * soh + offs_d, out.to(out_ptr.dtype.element_ty))
            tl.atomic_xchg(count_ptr + bh, 0, sem="relaxed", scope="gpu")  # ready for the next call


def _check(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> None:
    if q.dim() != 4 or q.shape[2] != 1:
        raise ValueError(f"q must be [batch, heads, 1, head_dim] (one query token), got {tuple(q.shape)}")
    b, h, _, d = q.shape
    if k.dim() != 4 or k.shape != v.shape or k.shape[0] != b or k.shape[3] != d or k.shape[1] == 0 or h % k.shape[1]:
        raise ValueError(f"k and v must be [batch, kv_heads, length, head_dim] with kv_heads dividing the {h} query heads, "
                         f"got {tuple(k.shape)} and {tuple(v.shape)}")
    if mask is not None and (mask.dtype != torch.bool or mask.dim() != 4 or mask.shape[0] not in (1, b) or mask.shape[1] != 1
                             or mask.shape[2] != 1 or mask.shape[3] != k.shape[2]):
        raise ValueError(f"mask must be bool [batch or 1, 1, 1, {k.shape[2]}] (True: attend), got {mask.dtype} {tuple(mask.shape)}")


def decode_attention_reference(q, k, v, mask, scale: float) -> torch.Tensor:
    """softmax(q kᵀ · scale, masked) v in fp32 from the definition, [B, H, 1, D] in q's dtype."""
    group = q.shape[1] // k.shape[1]
    kf = k.float().repeat_interleave(group, dim=1)
    vf = v.float().repeat_interleave(group, dim=1)
    s = (q.float() @ kf.transpose(-1, -2)) * scale
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
        vf = vf.masked_fill(~mask.transpose(-1, -2), 0.0)  # a masked slot's v, NaN or not, gets weight 0 exactly
    return (torch.softmax(s, dim=-1) @ vf).to(q.dtype)


def _splits(bh: int, length: int, sm: int) -> int:
    """Slices of the cache a (sequence, head): enough programs for ~2 waves, none shorter than 32 slots."""
    return max(1, min(next_power_of_2(cdiv(2 * sm, bh)) if bh < 2 * sm else 1, next_power_of_2(cdiv(length, 32)), 16))


def decode_attention_triton(q, k, v, mask, scale: float, *, splits: int | None = None, block: int | None = None) -> torch.Tensor:
    """The kernel (CUDA, or CPU tensors under TRITON_INTERPRET=1); `splits` overrides the slices a head, `block` the
    slots a step."""
    _check(q, k, v, mask)
    b, h, _, d = q.shape
    length = k.shape[2]
    if d & (d - 1) or d < 16:
        raise ValueError(f"the kernel takes a power-of-two head_dim of at least 16, got {d}")
    out = torch.empty(b, h, 1, d, device=q.device, dtype=q.dtype)
    if b * h == 0:
        return out
    sm = 4 if interpreting() or not q.is_cuda else sm_count(q.device)
    n = splits or _splits(b * h, length, sm)
    if n < 1 or n & (n - 1):
        raise ValueError(f"splits must be a power of two, got {n}")
    # blocks of 16-64 slots, a slice's share of the cache where that is less (as before the slices were interleaved)
    block = block or (16 if interpreting() else min(64, max(16, next_power_of_2(cdiv(length, n)))))
    if block < 16 or block & (block - 1):
        raise ValueError(f"block must be a power of two of at least 16, got {block}")
    part = torch.empty(b * h, n, d + 2, device=q.device, dtype=torch.float32)
    if mask is not None:
        mask = mask.expand(b, 1, 1, length)
    _decode_attention_kernel[(b * h, n)](
        q, k, v, mask if mask is not None else q, part, out, tile_counters(q.device, b * h), h, h // k.shape[1], length,
        float(scale), q.stride(0), q.stride(1), k.stride(0), k.stride(1), k.stride(2), v.stride(0), v.stride(1), v.stride(2),
        mask.stride(0) if mask is not None else 0, mask.stride(3) if mask is not None else 0, out.stride(0), out.stride(1),
        HAS_MASK=mask is not None, D=d, BLOCK_L=block, SPLITS=n, num_warps=1 if interpreting() else 4,
    )
    return out


def _kernel_takes(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> bool:
    d = q.shape[-1]
    return (triton is not None and q.is_cuda and d >= 16 and not d & (d - 1) and q.stride(-1) == 1 and k.stride(-1) == 1
            and v.stride(-1) == 1 and max(q.numel(), k.numel()) < 2**31)


@torch.library.custom_op("lowbit::decode_attention", mutates_args=())
def _decode_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, scale: float) -> torch.Tensor:
    if _kernel_takes(q, k, v):
        return decode_attention_triton(q, k, v, mask, scale)
    return decode_attention_reference(q, k, v, mask, scale)


@_decode_attention.register_fake
def _(q, k, v, mask, scale):
    return torch.empty_like(q, memory_format=torch.contiguous_format)


def decode_attention(q, k, v, mask=None, scale: float | None = None) -> torch.Tensor:
    """softmax(q kᵀ · scale) v for one query token: q [B, H, 1, D], k and v [B, Hkv, L, D] (Hkv dividing H: grouped
    queries), mask bool [B or 1, 1, 1, L] (True: attend) or None; scale 1/√D by default. Returns [B, H, 1, D]."""
    _check(q, k, v, mask)
    return _decode_attention(q, k, v, mask, 1 / math.sqrt(q.shape[-1]) if scale is None else float(scale))
