"""LLM.int8()'s outlier columns: which columns of x are over the threshold (`find`), and their product added in place
(`add_product_`): out += x[:, cols] @ (W[:, cols] · s)ᵀ over the first `count` of `cols`, with W the int8 weight [N, K]
and s its row scales.

`cols` and `count` stay on the device, so a layer using these can be captured in a CUDA graph: `find` writes them in
one small kernel, and the product's kernel reads `count` and loops over that many columns, so a batch without outliers
costs it a launch and nothing else, and one with a few reads only their columns of W.
"""

from __future__ import annotations

import torch

from .tiles import cdiv, interpreting, next_power_of_2

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
    def _find_kernel(peak_ptr, skip_ptr, cols_ptr, count_ptr, K, threshold, BLOCK: tl.constexpr):
        """One program: the columns whose peak |x| is over the threshold, as a mask and, in order, as a list and its
        length (an exclusive prefix sum a chunk gives each its place)."""
        base = tl.zeros((), dtype=tl.int32)
        for k0 in range(0, K, BLOCK):
            offs = k0 + tl.arange(0, BLOCK)
            ok = offs < K
            over = (tl.load(peak_ptr + offs, mask=ok, other=0.0).to(tl.float32) > threshold) & ok
            tl.store(skip_ptr + offs, over, mask=ok)
            o = over.to(tl.int32)
            tl.store(cols_ptr + base + tl.cumsum(o, 0) - o, offs, mask=over)
            base += tl.sum(o, 0)
        tl.store(count_ptr, base)


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


def _find_reference(peak: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    over = peak.float() > threshold
    cols = torch.sort((~over).to(torch.uint8), stable=True).indices.to(torch.int32)  # the True positions first, in order
    return over, cols, over.sum().reshape(1).to(torch.int32)


def find_triton(peak: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The kernel (CUDA, or CPU tensors under TRITON_INTERPRET=1)."""
    k = peak.numel()
    skip = torch.empty(k, device=peak.device, dtype=torch.bool)
    cols = torch.empty(k, device=peak.device, dtype=torch.int32)
    count = torch.empty(1, device=peak.device, dtype=torch.int32)
    # one chunk up to 16384 columns on the GPU (one program's loads all in flight at once, one scan), several past that
    block = 64 if interpreting() else min(16384, next_power_of_2(max(k, 1)))
    _find_kernel[(1,)](peak.contiguous(), skip, cols, count, k, float(threshold), BLOCK=block,
                       num_warps=1 if interpreting() else max(4, min(16, block // 256)))
    return skip, cols, count


@torch.library.custom_op("lowbit::find_outlier_columns", mutates_args=())
def _find(peak: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if triton is not None and peak.is_cuda:
        return find_triton(peak, threshold)
    return _find_reference(peak, threshold)


@_find.register_fake
def _(peak, threshold):
    k = peak.numel()
    return peak.new_empty(k, dtype=torch.bool), peak.new_empty(k, dtype=torch.int32), peak.new_empty(1, dtype=torch.int32)


def find(peak: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The columns of peak [K] (each column's largest |x|) over `threshold`: a bool mask [K], their indices in order
    at the front of an int32 [K] (the rest undefined) and their count [1], all on peak's device, nothing read on the
    host (one small kernel on CUDA)."""
    if peak.dim() != 1:
        raise ValueError(f"peak must be 1-D, one value a column, got shape {tuple(peak.shape)}")
    return _find(peak, float(threshold))
