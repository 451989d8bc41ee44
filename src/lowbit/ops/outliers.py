"""LLM.int8()'s outlier columns: which columns of x are over the threshold (`find`), and their product added in place
(`add_product_`): out += x[:, cols] @ (W[:, cols] · s)ᵀ over the first `count` of `cols`, with W the int8 weight [N, K]
and s its row scales.

`cols` and `count` stay on the device, so a layer using these can be captured in a CUDA graph. `find` writes them in
one kernel that also takes each column's peak |x|: torch's column max and a list kernel were two launches and ~16 µs
a 7B linear at 256 tokens on the H200, most of it the max (docs/benchmarks/README.md, session 19). The product's
kernel reads `count` and loops over that many columns, so a batch without outliers costs it a launch and nothing else,
and one with a few reads only their columns of W.
"""

from __future__ import annotations

import torch

from .tiles import cdiv, interpreting, next_power_of_2, tile_counters

try:
    import triton
    import triton.language as tl
except ImportError:  # lowbit runs without Triton; the op then takes the reference path
    triton = None

_INT32_MAX = 2**31 - 1


if triton is not None:

    @triton.jit
    def _outlier_mm_kernel(
        x_ptr, w_ptr, s_ptr, cols_ptr, count_ptr, out_ptr, M, N, stride_xm, stride_wn, stride_om,
        FP32: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_J: tl.constexpr,
    ):
        """An output tile += its rows of x times its rows of W, both gathered at the columns cols[:count]. The products
        are exact in x's 16-bit dtype (|code| ≤ 127) and summed in fp32; FP32: x is fp32 (or the interpreter, whose bf16
        dot is wrong), IEEE fp32 products."""
        count = tl.load(count_ptr)
        if count > 0:
            offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
            offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
            m_mask, n_mask = offs_m < M, offs_n < N
            acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
            for j0 in range(0, count, BLOCK_J):
                j = j0 + tl.arange(0, BLOCK_J)
                j_mask = j < count
                c = tl.load(cols_ptr + j, mask=j_mask, other=0)
                xo = tl.load(x_ptr + offs_m[:, None] * stride_xm + c[None, :], mask=m_mask[:, None] & j_mask[None, :], other=0)
                wo = tl.load(w_ptr + offs_n[:, None] * stride_wn + c[None, :], mask=n_mask[:, None] & j_mask[None, :], other=0)
                if FP32:
                    acc += tl.dot(xo.to(tl.float32), tl.trans(wo.to(tl.float32)), input_precision="ieee")
                else:
                    acc += tl.dot(xo, tl.trans(wo.to(xo.dtype)))
            acc *= tl.load(s_ptr + offs_n, mask=n_mask, other=0.0)[None, :]
            o_ptrs = out_ptr + offs_m[:, None] * stride_om + offs_n[None, :]
            o_mask = m_mask[:, None] & n_mask[None, :]
            prev = tl.load(o_ptrs, mask=o_mask, other=0.0).to(tl.float32)
            tl.store(o_ptrs, (prev + acc).to(out_ptr.dtype.element_ty), mask=o_mask)

    @triton.jit
    def _max_nan(a, b):
        return tl.maximum(a, b, propagate_nan=tl.PropagateNan.ALL)

    @triton.jit
    def _find_kernel(
        x_ptr, exclude_ptr, peak_ptr, skip_ptr, cols_ptr, count_ptr, ticket_ptr, M, K, stride_xm, threshold,
        HAS_EXCLUDE: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr, SCAN: tl.constexpr,
    ):
        """A program a block of columns: their peak |x| (NaN if any is NaN, as torch's max) over every row, and the mask
        of those over the threshold or excluded. The last program to finish (two counters, the programs done and the
        outliers seen, zero before and left zero after) lists the columns over the threshold and not excluded, in
        order, and their count: an exclusive prefix sum a chunk of SCAN columns gives each its place."""
        offs_k = tl.program_id(0) * BLOCK_K + tl.arange(0, BLOCK_K)
        k_ok = offs_k < K
        acc = tl.zeros((BLOCK_M, BLOCK_K), dtype=tl.float32)
        for m0 in range(0, M, BLOCK_M):
            rows = m0 + tl.arange(0, BLOCK_M)
            v = tl.load(x_ptr + rows[:, None] * stride_xm + offs_k[None, :], mask=(rows < M)[:, None] & k_ok[None, :], other=0.0)
            acc = _max_nan(acc, tl.abs(v.to(tl.float32)))
        peak = tl.reduce(acc, 0, _max_nan)
        if HAS_EXCLUDE:
            excluded = tl.load(exclude_ptr + offs_k, mask=k_ok, other=0) != 0
            peak = tl.where(excluded, 0.0, peak)
            skip = (peak > threshold) | excluded
        else:
            skip = peak > threshold
        tl.store(skip_ptr + offs_k, skip, mask=k_ok)
        tl.store(peak_ptr + offs_k, peak, mask=k_ok)
        listed = tl.sum(((peak > threshold) & k_ok).to(tl.int32), 0)
        if listed > 0:  # the outliers' total, so that the last program can skip the list when there are none
            tl.atomic_add(ticket_ptr + 1, listed, sem="relaxed", scope="gpu")
        tl.debug_barrier()  # every thread's peaks are written before the counter says so
        done = tl.atomic_add(ticket_ptr, 1, sem="acq_rel", scope="gpu")
        if done == tl.num_programs(0) - 1:
            total = tl.atomic_xchg(ticket_ptr + 1, 0, sem="relaxed", scope="gpu")
            if total > 0:  # a chunk's scan costs ~2.7 µs on the H200 (session 19, call 5): only when there is a list
                base = tl.zeros((), dtype=tl.int32)
                for k0 in range(0, K, SCAN):
                    offs = k0 + tl.arange(0, SCAN)
                    ok = offs < K
                    over = (tl.load(peak_ptr + offs, mask=ok, other=0.0, cache_modifier=".cg") > threshold) & ok
                    o = over.to(tl.int32)
                    tl.store(cols_ptr + base + tl.cumsum(o, 0) - o, offs, mask=over)
                    base += tl.sum(o, 0)
            tl.store(count_ptr, total)
            tl.atomic_xchg(ticket_ptr, 0, sem="relaxed", scope="gpu")  # ready for the next call


def _check(out, x, qweight, scale, cols, count) -> None:
    m, k = x.shape
    n = qweight.shape[0]
    if qweight.dtype != torch.int8 or qweight.shape[1] != k:
        raise ValueError(f"qweight must be int8 [N, {k}], got {qweight.dtype} {tuple(qweight.shape)}")
    if out.shape != (m, n):
        raise ValueError(f"out must be [{m}, {n}], got {tuple(out.shape)}")
    if scale.numel() != n:
        raise ValueError(f"scale must hold one value per row of qweight ({n}), got {scale.numel()}")
    if cols.dim() != 1 or cols.numel() > k or count.numel() != 1 or cols.dtype != torch.int32:
        raise ValueError(f"cols must be 1-D int32 with at most K = {k} columns and count one value, got {cols.dtype} "
                         f"{tuple(cols.shape)}, {tuple(count.shape)}")


def add_product_triton(out, x, qweight, scale, cols, count) -> torch.Tensor:
    """The kernel (CUDA, or CPU tensors under TRITON_INTERPRET=1); returns out."""
    _check(out, x, qweight, scale, cols, count)
    m, n = out.shape
    if x.stride(1) != 1 or qweight.stride(1) != 1 or out.stride(1) != 1:
        raise ValueError("x, qweight and out must have unit stride along their last dimension")
    fp32 = x.dtype == torch.float32 or interpreting()
    bm, bn, bj = (16, 16, 16) if interpreting() else (64, 64, 32)
    _outlier_mm_kernel[(cdiv(m, bm), cdiv(n, bn))](
        x, qweight, scale.reshape(-1).float().contiguous(), cols.contiguous(), count.reshape(1), out, m, n,
        x.stride(0), qweight.stride(0), out.stride(0), FP32=fp32, BLOCK_M=bm, BLOCK_N=bn, BLOCK_J=bj,
    )
    return out


def add_product_reference(out, x, qweight, scale, cols, count) -> torch.Tensor:
    """The float path (reads count on the host): x's columns exact, the int8 weight dequantized in fp32."""
    _check(out, x, qweight, scale, cols, count)
    c = cols[: int(count.reshape(()).item())]
    w = qweight.index_select(1, c).float() * scale.reshape(-1, 1).float()
    out += (x.index_select(1, c).float() @ w.t()).to(out.dtype)
    return out


@torch.library.custom_op("lowbit::add_outlier_product", mutates_args=("out",))
def _add_outlier_product(
    out: torch.Tensor, x: torch.Tensor, qweight: torch.Tensor, scale: torch.Tensor, cols: torch.Tensor, count: torch.Tensor
) -> None:
    if triton is not None and out.is_cuda and max(out.numel(), x.numel(), qweight.numel()) <= _INT32_MAX:
        add_product_triton(out, x.contiguous(), qweight, scale, cols, count)
    else:  # (the kernel's offsets are 32-bit)
        add_product_reference(out, x, qweight, scale, cols, count)


def add_product_(out, x, qweight, scale, cols, count) -> torch.Tensor:
    """out += x[:, cols[:count]] @ (qweight[:, cols[:count]] · scale)ᵀ, in place (see the module doc); returns out."""
    _add_outlier_product(out, x, qweight, scale, cols, count)
    return out


def _check_find(x: torch.Tensor, exclude: torch.Tensor | None) -> None:
    if x.dim() != 2:
        raise ValueError(f"x must be 2-D [tokens, K], got shape {tuple(x.shape)}")
    if exclude is not None and (exclude.dtype != torch.bool or tuple(exclude.shape) != (x.shape[1],)):
        raise ValueError(f"exclude must be a bool mask of x's {x.shape[1]} columns, got {exclude.dtype} {tuple(exclude.shape)}")


def _find_reference(x: torch.Tensor, threshold: float, exclude: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    _check_find(x, exclude)
    peak = torch.linalg.vector_norm(x, float("inf"), dim=0).float() if x.shape[0] else x.new_zeros(x.shape[1], dtype=torch.float32)
    if exclude is not None:
        peak = peak.masked_fill(exclude, 0)
    over = peak > threshold
    cols = torch.sort((~over).to(torch.uint8), stable=True).indices.to(torch.int32)  # the True positions first, in order
    return over if exclude is None else over | exclude, cols, over.sum().reshape(1).to(torch.int32)


def find_triton(x: torch.Tensor, threshold: float, exclude: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The kernel (CUDA, or CPU tensors under TRITON_INTERPRET=1)."""
    _check_find(x, exclude)
    m, k = x.shape
    skip = torch.empty(k, device=x.device, dtype=torch.bool)
    cols = torch.empty(k, device=x.device, dtype=torch.int32)
    if k == 0:
        return skip, cols, torch.zeros(1, device=x.device, dtype=torch.int32)
    count = torch.empty(1, device=x.device, dtype=torch.int32)
    peak = torch.empty(k, device=x.device, dtype=torch.float32)
    if x.stride(1) != 1:
        x = x.contiguous()
    # 64 rows × 32 columns a load, 8 warps (128 programs on 4096 columns): of seven tiles the fastest or within 3 % at
    # 256 × 4096, 256 × 11008 and 4096 × 4096 (H200, session 19, call 5, benchmarks/_exp_find.py); the list in chunks
    # of up to 4096 (sm_90: 91 registers, two programs an SM; chunks of 8192 took 167)
    bm, bk, scan, warps = (16, 16, 64, 1) if interpreting() else (64, 32, min(4096, next_power_of_2(k)), 8)
    _find_kernel[(cdiv(k, bk),)](
        x, exclude if exclude is not None else skip, peak, skip, cols, count, tile_counters(x.device, 2), m, k, x.stride(0),
        float(threshold), HAS_EXCLUDE=exclude is not None, BLOCK_M=bm, BLOCK_K=bk, SCAN=scan, num_warps=warps,
    )
    return skip, cols, count


@torch.library.custom_op("lowbit::find_outlier_columns", mutates_args=())
def _find(x: torch.Tensor, threshold: float, exclude: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if triton is not None and x.is_cuda and x.numel() <= _INT32_MAX:
        return find_triton(x, threshold, exclude)
    return _find_reference(x, threshold, exclude)  # (the kernel's offsets are 32-bit)


@_find.register_fake
def _(x, threshold, exclude):
    k = x.shape[1]
    return x.new_empty(k, dtype=torch.bool), x.new_empty(k, dtype=torch.int32), x.new_empty(1, dtype=torch.int32)


def find(x: torch.Tensor, threshold: float, exclude: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The outlier columns of x [tokens, K]: those whose largest |x| is over `threshold` (NaN never is) and not in
    `exclude` (a bool mask [K]; LLM.int8()'s calibrated columns). Returns a bool mask [K] of the columns over the
    threshold or excluded, the outliers' indices in order at the front of an int32 [K] (the rest undefined) and their
    count [1], all on x's device, nothing read on the host (one small kernel on CUDA)."""
    _check_find(x, exclude)
    return _find(x, float(threshold), exclude)
