"""LLM.int8()'s outlier product, added in place: out += x[:, cols] @ (W[:, cols] · s)ᵀ over the first `count` of `cols`,
with W the int8 weight [N, K] and s its row scales.

`cols` and `count` stay on the device (the batch's outlier columns, found without reading the host), so a layer
using this can be captured in a CUDA graph; the kernel reads `count` and loops over that many columns, so a batch
without outliers costs a launch and nothing else, and one with a few reads only their columns of W.
"""

from __future__ import annotations

import torch

from .tiles import cdiv, interpreting

try:
    import triton
    import triton.language as tl
except ImportError:  # lowbit runs without Triton; the op then takes the reference path
    triton = None


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


def _check(out, x, qweight, scale, cols, count) -> None:
    m, k = x.shape
    n = qweight.shape[0]
    if qweight.dtype != torch.int8 or qweight.shape[1] != k:
        raise ValueError(f"qweight must be int8 [N, {k}], got {qweight.dtype} {tuple(qweight.shape)}")
    if out.shape != (m, n):
        raise ValueError(f"out must be [{m}, {n}], got {tuple(out.shape)}")
    if scale.numel() != n:
        raise ValueError(f"scale must hold one value per row of qweight ({n}), got {scale.numel()}")
    if cols.dim() != 1 or cols.numel() > k or count.numel() != 1:
        raise ValueError(f"cols must be 1-D with at most K = {k} columns and count one value, got {tuple(cols.shape)}, {tuple(count.shape)}")


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
    if triton is not None and out.is_cuda:
        add_product_triton(out, x.contiguous(), qweight, scale, cols, count)
    else:
        add_product_reference(out, x, qweight, scale, cols, count)


def add_product_(out, x, qweight, scale, cols, count) -> torch.Tensor:
    """out += x[:, cols[:count]] @ (qweight[:, cols[:count]] · scale)ᵀ, in place (see the module doc); returns out."""
    _add_outlier_product(out, x, qweight, scale, cols, count)
    return out


def mask_columns(over: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The True positions of a bool mask [K] first, in order, and how many there are, both on the mask's device (a
    stable sort: nothing read on the host)."""
    cols = torch.sort((~over).to(torch.uint8), stable=True).indices
    return cols, over.sum().reshape(1)
