"""Scaled INT8 matmul and fused per-token INT8 activation quantization, in Triton.

    out[m, n] = (Σ_k a[m, k] · b[k, n]) · sa[m] · sb[n]   (int8 × int8 → int32, scales in the epilogue)

One kernel serves the three layouts training needs (A@Bᵀ, A@B, Aᵀ@B): operands are passed by
strides, so a transposed operand is a view. On Hopper, above `TUNED_MIN_M` rows, a transposed operand is
copied K-major instead, for the TMA kernels (`_k_major`). `quantize_rows` reads each row once:
absmax, scale and int8 codes in one pass (the codes follow `lowbit.formats.int`: symmetric,
round half to even, clamp to ±127; or, on request, seeded stochastic rounding for gradients);
rows it cannot hold, or that are not contiguous, take the tiled passes of `ops.rows_cols`.

Both are registered as torch.library triton ops (`lowbit::scaled_int8_mm`, `lowbit::quantize_rows_int8`):
torch.compile traces into them (see the note above the ops); CPU tensors take the reference path.
"""

from __future__ import annotations

import torch
from torch.library import triton_op, wrap_triton

from ..formats import int as intfmt
from . import int8_hopper
from .rows_cols import quantize_tiled, rows_reference, seed_tensor, use_triton
from .tiles import cdiv, grouped_tile, interpreting, next_power_of_2, row_major_copy, sm_count

try:
    import triton
    import triton.language as tl

    from .rows_cols import abs_max, absmax_scale, codes
except ImportError:  # lowbit runs without Triton; the ops then take the reference path
    triton = None


if triton is not None:

    @triton.jit
    def _scaled(acc, offs_m, offs_n, sa_ptr, sb_ptr, bias_ptr, M, N, HAS_BIAS: tl.constexpr):
        """The int32 sums of an output tile times their row and column scales (+ bias), in fp32: every matmul's
        epilogue."""
        sa = tl.load(sa_ptr + offs_m, mask=offs_m < M, other=0.0)
        sb = tl.load(sb_ptr + offs_n, mask=offs_n < N, other=0.0)
        out = acc.to(tl.float32) * sa[:, None] * sb[None, :]
        if HAS_BIAS:
            out += tl.load(bias_ptr + offs_n, mask=offs_n < N, other=0.0)[None, :]
        return out

    @triton.jit
    def _scaled_mm_kernel(
        a_ptr, b_ptr, c_ptr, sa_ptr, sb_ptr, bias_ptr,
        M, N, K,
        stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn, M_KEY,
        HAS_BIAS: tl.constexpr, EVEN_K: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
    ):
        pid_m, pid_n = grouped_tile(tl.program_id(0), M, N, BLOCK_M, BLOCK_N, GROUP_M)

        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        offs_k = tl.arange(0, BLOCK_K)
        # rows / columns past M / N read the last one (never stored): with EVEN_K the loop loads no mask
        rows, cols = tl.minimum(offs_m, M - 1), tl.minimum(offs_n, N - 1)
        a_ptrs = a_ptr + rows[:, None] * stride_am + offs_k[None, :] * stride_ak
        b_ptrs = b_ptr + offs_k[:, None] * stride_bk + cols[None, :] * stride_bn
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.int32)
        for k in range(0, tl.cdiv(K, BLOCK_K)):
            if EVEN_K:
                a = tl.load(a_ptrs)
                b = tl.load(b_ptrs)
            else:
                k_left = K - k * BLOCK_K
                a = tl.load(a_ptrs, mask=offs_k[None, :] < k_left, other=0)
                b = tl.load(b_ptrs, mask=offs_k[:, None] < k_left, other=0)
            acc += tl.dot(a, b, out_dtype=tl.int32)
            a_ptrs += BLOCK_K * stride_ak
            b_ptrs += BLOCK_K * stride_bk

        out = _scaled(acc, offs_m, offs_n, sa_ptr, sb_ptr, bias_ptr, M, N, HAS_BIAS)
        c_ptrs = c_ptr + offs_m[:, None] * stride_cm + offs_n[None, :] * stride_cn
        tl.store(c_ptrs, out.to(c_ptr.dtype.element_ty), mask=(offs_m[:, None] < M) & (offs_n[None, :] < N))

    @triton.jit
    def _quantize_rows_kernel(x_ptr, q_ptr, s_ptr, seed_ptr, zero_ptr, N, stride_xm, stride_qm, BLOCK_N: tl.constexpr,
                              STOCHASTIC: tl.constexpr, ZERO_COLS: tl.constexpr):
        row = tl.program_id(0)
        offs = tl.arange(0, BLOCK_N)
        mask = offs < N
        x = tl.load(x_ptr + row * stride_xm + offs, mask=mask, other=0.0).to(tl.float32)
        if ZERO_COLS:  # the columns another product takes (LLM.int8()'s outliers) count as 0
            x = tl.where(tl.load(zero_ptr + offs, mask=mask, other=0) != 0, 0.0, x)
        # IEEE-rounded division (plain / is approximate on the GPU): codes and scales equal formats.int's exactly
        scale = absmax_scale(abs_max(x, 0), False)
        u = 0.0
        if STOCHASTIC:
            u = tl.rand(tl.load(seed_ptr), row.to(tl.int64) * N + offs)
        tl.store(q_ptr + row * stride_qm + offs, codes(x, scale, u, False, STOCHASTIC, False), mask=mask)
        tl.store(s_ptr + row, scale)

    # Large M (training, long prefills): the GPU picks the tile per shape, once. M_KEY (unused by the kernel) is M
    # rounded up to a power of two: keyed on M itself, every new prefill length re-tuned (six tiles timed, ~1 s),
    # and a first length met inside a CUDA-graph capture would time kernels there. Every tile is 128 deep, so
    # EVEN_K is the caller's to compute.
    _scaled_mm_tuned = triton.autotune(
        configs=[
            triton.Config(dict(BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=128, GROUP_M=8), num_warps=w, num_stages=st)
            for bm, bn, w, st in [(128, 256, 8, 3), (256, 128, 8, 3), (128, 128, 8, 4), (128, 128, 4, 4), (64, 256, 4, 4), (64, 128, 4, 4)]
        ],
        key=["M_KEY", "N", "K"],
    )(_scaled_mm_kernel)

    @triton.jit
    def _scaled_mm_tma_kernel(
        a_desc, b_desc, c_desc, sa_ptr, sb_ptr, bias_ptr, M, N, K, NUM_PROGRAMS,
        HAS_BIAS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
    ):
        """The scaled matmul of K-major operands, a [M, K] and bt [N, K], through TMA descriptors (the copy
        engine's bounds checks stand in for masks), persistent: each program walks output tiles NUM_PROGRAMS
        apart, and the flattened loop lets the next tile's loads overlap this tile's epilogue."""
        num_pid_m = tl.cdiv(M, BLOCK_M)
        num_pid_n = tl.cdiv(N, BLOCK_N)
        for tile in tl.range(tl.program_id(0), num_pid_m * num_pid_n, NUM_PROGRAMS, flatten=True):
            pid_m, pid_n = grouped_tile(tile, M, N, BLOCK_M, BLOCK_N, GROUP_M)
            om, on = pid_m * BLOCK_M, pid_n * BLOCK_N
            acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.int32)
            for k in range(0, tl.cdiv(K, BLOCK_K)):
                acc = tl.dot(a_desc.load([om, k * BLOCK_K]), b_desc.load([on, k * BLOCK_K]).T, acc, out_dtype=tl.int32)
            offs_m = om + tl.arange(0, BLOCK_M)
            offs_n = on + tl.arange(0, BLOCK_N)
            c_desc.store([om, on], _scaled(acc, offs_m, offs_n, sa_ptr, sb_ptr, bias_ptr, M, N, HAS_BIAS).to(c_desc.dtype))


TUNED_MIN_M = 512  # above it the autotuned kernel; at and below it the fixed tiles of `_mm_config`
# Above it, operands already K-major take the Gluon ping-pong on Hopper (the H200, session 19, the 7B linears with
# weights read from memory, quantization included: 256 / 512 tokens 163.5 / 193.0 µs against the fixed 64 × 128
# tile's 182.5 / 236.4, bf16 191.1 / 323.3; at 128 tokens 140.7 against 138.1; benchmarks/_exp_w8a8_mid.py)
PINGPONG_MIN_M = 128


def _mm_config(m: int, n: int, k: int, k_major: bool = False) -> dict:
    """Tile sizes: large tiles on the GPU (int8 MMA wants K-tiles of 64-128); small ones in the
    interpreter, where each program is Python. `k_major`: both operands contiguous along K (A@Bᵀ with
    row-major A and B, as every lowbit caller passes them: W8A8 and training's transposed codes)."""
    if interpreting():
        return dict(BLOCK_M=16, BLOCK_N=32, BLOCK_K=32, GROUP_M=4, num_warps=4, num_stages=1)
    # ≤ 128 rows, K-major: narrow tiles, so that a 4096-row weight makes 64 programs, not 32 (the H200, session 10,
    # the 7B linears with weights read from memory, quantization included: 16 tokens 135 → 115 µs, 32: 143 → 125,
    # 64: 149 → 127, 128: 155 → 142; bf16 130-140; docs/benchmarks/session10-h200/call5). K-major only: with A
    # transposed (M contiguous) the 32 × 64 × 256 tile gave wrong sums on the H200 (M=17, N=33, K=77: relative
    # error 0.91, call 6), where the tile below was right.
    if k_major and m <= 64:
        return dict(BLOCK_M=max(16, next_power_of_2(m)), BLOCK_N=64, BLOCK_K=256, GROUP_M=8, num_warps=4, num_stages=3)
    if k_major and m <= 128:
        return dict(BLOCK_M=64, BLOCK_N=64, BLOCK_K=128, GROUP_M=8, num_warps=4, num_stages=4)
    if m <= 64:
        return dict(BLOCK_M=max(16, next_power_of_2(m)), BLOCK_N=128, BLOCK_K=128, GROUP_M=8, num_warps=4, num_stages=4)
    if m <= 512:  # enough tiles to fill 132 SMs: 128x256 tiles give only 32 programs at M=256, N=4096
        return dict(BLOCK_M=64, BLOCK_N=128, BLOCK_K=128, GROUP_M=8, num_warps=4, num_stages=4)
    return dict(BLOCK_M=128, BLOCK_N=256 if n >= 4096 else 128, BLOCK_K=128, GROUP_M=8, num_warps=8, num_stages=3)


def scaled_int8_mm_triton(
    a: torch.Tensor, b: torch.Tensor, scale_a: torch.Tensor, scale_b: torch.Tensor,
    bias: torch.Tensor | None = None, out_dtype: torch.dtype = torch.bfloat16, *, config: dict | None = None,
) -> torch.Tensor:
    """a [M, K] int8 @ b [K, N] int8 (any strides) · scale_a [M] · scale_b [N] (+ bias) → [M, N].
    `config` (the keys of `_mm_config`) replaces the tile, autotuned or not: for sweeps."""
    _check_mm(a, b, scale_a, scale_b)
    m, k = a.shape
    n = b.shape[1]
    tuned = m > TUNED_MIN_M and not interpreting() and config is None
    scale_a, scale_b = scale_a.float().contiguous(), scale_b.float().contiguous()
    bias = bias.float().contiguous() if bias is not None else None
    if tuned and a.is_cuda and torch.cuda.get_device_capability(a.device)[0] == 9 and k % 16 == 0:
        a, b = _k_major(a, b)
    pingpong = m > PINGPONG_MIN_M and config is None and int8_hopper.gluon is not None
    if (tuned or pingpong) and tma_takes(a, b, out_dtype):
        return _scaled_mm_tma_op(a, b.t(), scale_a, scale_b, bias, out_dtype)
    out = torch.empty(m, n, device=a.device, dtype=out_dtype)
    args = (a, b, out, scale_a, scale_b, bias if bias is not None else scale_b,
            m, n, k, a.stride(0), a.stride(1), b.stride(0), b.stride(1), out.stride(0), out.stride(1),
            next_power_of_2(m) if isinstance(m, int) else m)  # (a traced, symbolic M keys as itself)
    if tuned:
        def grid(meta):
            return (cdiv(m, meta["BLOCK_M"]) * cdiv(n, meta["BLOCK_N"]),)
        wrap_triton(_scaled_mm_tuned)[grid](*args, HAS_BIAS=bias is not None, EVEN_K=k % 128 == 0)
        return out
    cfg = config or _mm_config(m, n, k, a.stride(1) == 1 and b.stride(0) == 1)
    grid = (cdiv(m, cfg["BLOCK_M"]) * cdiv(n, cfg["BLOCK_N"]),)
    wrap_triton(_scaled_mm_kernel)[grid](*args, HAS_BIAS=bias is not None, EVEN_K=k % cfg["BLOCK_K"] == 0, **cfg)
    return out


TMA_TILE = dict(BLOCK_M=128, BLOCK_N=256, BLOCK_K=128, GROUP_M=8, num_warps=8, num_stages=3)
TMA_TILE_FP32_OUT = dict(BLOCK_M=128, BLOCK_N=128, BLOCK_K=128, GROUP_M=8, num_warps=8, num_stages=4)


def _k_major(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """a row-major and b a transposed row-major [N, K], copying whichever is not. The TMA kernels take K-major
    operands only (an 8-bit wgmma reads K-major shared memory), and on a transposed 8-bit operand the pointer
    kernel ran at ~6 % of their speed (H200, session 14, 4096³: A@B 78 and Aᵀ@B 55 TOP/s against A@Bᵀ's 1339).
    A copy moves M·K or K·N bytes (`row_major_copy`: at 4096³, ~6 µs against the matmul's ~100)."""
    a = a if a.stride(1) == 1 else row_major_copy(a)
    b = b if b.stride(0) == 1 else row_major_copy(b.t()).t()
    return a, b


def tma_takes(a: torch.Tensor, b: torch.Tensor, out_dtype: torch.dtype) -> bool:
    """Whether the TMA kernel takes a @ b: a Hopper GPU, both operands K-major (a row-major, b a transposed
    row-major [N, K]) with rows and starts 16-byte aligned, as the copy engine requires, and output rows too.
    Alignment is read from strides and storage offsets (the allocator's blocks are 512-byte aligned), so the
    check also holds on the fake tensors of a traced graph."""
    return (
        a.is_cuda and torch.cuda.get_device_capability(a.device)[0] == 9
        and a.stride(1) == 1 and b.stride(0) == 1 and a.stride(0) % 16 == 0 and b.stride(1) % 16 == 0
        and a.storage_offset() % 16 == 0 and b.storage_offset() % 16 == 0 and (b.shape[1] * out_dtype.itemsize) % 16 == 0
    )


def scaled_int8_mm_tma(
    a: torch.Tensor, bt: torch.Tensor, scale_a: torch.Tensor, scale_b: torch.Tensor,
    bias: torch.Tensor | None, out_dtype: torch.dtype, tile: dict | None = None,
) -> torch.Tensor:
    """a [M, K] @ bt [N, K]ᵀ (both K-major int8, aligned: `tma_takes`) · scales (+ bias), fp32 scales and bias.
    On a GPU, the warp-specialized Gluon kernel of `int8_hopper` (bit-equal, 13-39 % faster on the H200, session
    13); given a `tile`, in the interpreter, or without Gluon, the persistent Triton kernel `_scaled_mm_tma_kernel`.
    On the H200, a llama2-1b training step's 504 matmuls (16 × 2048 tokens, six shapes) took 170 ms on the latter's
    tile, within 2 % of the best of 7 TMA tiles shape by shape (session 11, calls 1-2)."""
    if tile is None and a.is_cuda and int8_hopper.gluon is not None:
        return int8_hopper.scaled_mm_pingpong(a, bt, scale_a, scale_b, bias, out_dtype)
    from triton.tools.tensor_descriptor import TensorDescriptor

    m, n, k = a.shape[0], bt.shape[0], a.shape[1]
    # 4-byte outputs: a 128 × 256 fp32 epilogue tile and three stages need 280 KB of shared memory (227 on sm_90)
    tile = tile or (TMA_TILE if out_dtype.itemsize <= 2 else TMA_TILE_FP32_OUT)
    out = torch.empty(m, n, device=a.device, dtype=out_dtype)
    bm, bn, bk = tile["BLOCK_M"], tile["BLOCK_N"], tile["BLOCK_K"]
    programs = max(1, min(sm_count(a.device) if a.is_cuda else 4, cdiv(m, bm) * cdiv(n, bn)))
    _scaled_mm_tma_kernel[(programs,)](
        TensorDescriptor.from_tensor(a, [bm, bk]), TensorDescriptor.from_tensor(bt, [bn, bk]),
        TensorDescriptor.from_tensor(out, [bm, bn]), scale_a, scale_b, bias if bias is not None else scale_b,
        m, n, k, programs, HAS_BIAS=bias is not None, **tile)
    return out


# Opaque to torch.compile: its tracing of triton ops does not carry TMA descriptors (torch 2.11); Inductor
# calls it as it is, one launch.
@torch.library.custom_op("lowbit::scaled_int8_mm_tma", mutates_args=())
def _scaled_mm_tma_op(
    a: torch.Tensor, bt: torch.Tensor, scale_a: torch.Tensor, scale_b: torch.Tensor,
    bias: torch.Tensor | None, out_dtype: torch.dtype,
) -> torch.Tensor:
    if a.data_ptr() % 16 or bt.data_ptr() % 16:  # memory the caching allocator did not hand out (from_blob, say)
        m, k = a.shape
        return scaled_int8_mm_triton(a, bt.t(), scale_a, scale_b, bias, out_dtype, config=_mm_config(m, bt.shape[0], k, True))
    return scaled_int8_mm_tma(a, bt, scale_a, scale_b, bias, out_dtype)


@_scaled_mm_tma_op.register_fake
def _(a, bt, scale_a, scale_b, bias, out_dtype):
    return a.new_empty(a.shape[0], bt.shape[0], dtype=out_dtype)


def scaled_int8_mm_reference(
    a: torch.Tensor, b: torch.Tensor, scale_a: torch.Tensor, scale_b: torch.Tensor,
    bias: torch.Tensor | None = None, out_dtype: torch.dtype = torch.bfloat16,
) -> torch.Tensor:
    _check_mm(a, b, scale_a, scale_b)
    acc = intfmt.int8_matmul(a, b.t())
    out = acc.float() * scale_a.float().reshape(-1, 1) * scale_b.float().reshape(1, -1)
    if bias is not None:
        out = out + bias.float()
    return out.to(out_dtype)


def _check_mm(a, b, scale_a, scale_b) -> None:
    if a.dtype != torch.int8 or b.dtype != torch.int8:
        raise ValueError(f"a and b must be int8, got {a.dtype} and {b.dtype}")
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"a [M, K] and b [K, N] must agree on K, got {tuple(a.shape)} and {tuple(b.shape)}")
    if scale_a.numel() != a.shape[0] or scale_b.numel() != b.shape[1]:
        raise ValueError(f"scale_a needs {a.shape[0]} values and scale_b {b.shape[1]}, got {scale_a.numel()} and {scale_b.numel()}")


MAX_ROW = 16384  # longest row the one-pass kernel holds in registers; longer rows take the tiled passes


def quantize_rows_triton(
    x: torch.Tensor, stochastic: bool = False, seed: int = 0, zero_cols: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row symmetric int8 of a 2-D float tensor: (codes [M, N] int8, row-major; scales [M] float32).
    `stochastic`: round up with probability frac(x/scale), from Philox draws keyed by `seed` (< 0: a
    fresh one) and the element's index (the same seed gives the same codes). `zero_cols` (bool [N]): columns
    taken as 0, as x.masked_fill(zero_cols, 0) would give, without the copy on the one-pass path. Rows that fit in
    registers take one pass; longer rows, and rows that are not contiguous (a transposed view, as
    training's gradient matmuls quantize), take two tiled passes over x in place — never a transposed copy."""
    m, n = x.shape
    if x.stride(1) != 1 or n > MAX_ROW:
        if zero_cols is not None:
            x = x.masked_fill(zero_cols, 0)
        return quantize_tiled(x, "int8", stochastic, seed, cols=False)
    q = torch.empty(m, n, device=x.device, dtype=torch.int8)
    s = torch.empty(m, device=x.device, dtype=torch.float32)
    block = next_power_of_2(n)
    wrap_triton(_quantize_rows_kernel)[(m,)](x, q, s, seed_tensor(x, stochastic, seed, s), zero_cols if zero_cols is not None else s,
                                             n, x.stride(0), q.stride(0), BLOCK_N=block, STOCHASTIC=stochastic,
                                             ZERO_COLS=zero_cols is not None, num_warps=min(16, max(1, block // 256)))
    return q, s


def quantize_rows_reference(x: torch.Tensor, stochastic: bool = False, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    return rows_reference(x, stochastic, seed, "int8")


# The reference seeds torch generators, which a traced graph cannot hold: an opaque op of its own.
@torch.library.custom_op("lowbit::quantize_rows_int8_reference", mutates_args=())
def _quantize_rows_reference_op(x: torch.Tensor, stochastic: bool, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    return quantize_rows_reference(x, stochastic, seed)


@_quantize_rows_reference_op.register_fake
def _(x, stochastic, seed):
    return x.new_empty(x.shape, dtype=torch.int8), x.new_empty(x.shape[0], dtype=torch.float32)


# The ops are `triton_op`s: torch.compile traces into them, so the Triton launches and the small torch
# ops around them (buffers, scales) go into the compiled graph and launch from its wrapper, not from
# Python op by op — a training step calls them ~1000 times, and eagerly that launch overhead, not the
# GPU, set the step time (call 1 of session 5: INT8 at 8 × 512 tokens ran 3.4x slower than bf16).


@triton_op("lowbit::scaled_int8_mm", mutates_args=())
def scaled_int8_mm(
    a: torch.Tensor, b: torch.Tensor, scale_a: torch.Tensor, scale_b: torch.Tensor,
    bias: torch.Tensor | None = None, out_dtype: torch.dtype = torch.bfloat16,
) -> torch.Tensor:
    """(a @ b) · scale_a[:, None] · scale_b[None, :] (+ bias): Triton on CUDA, exact int32 reference elsewhere."""
    if use_triton(a, b):
        return scaled_int8_mm_triton(a, b, scale_a, scale_b, bias, out_dtype)
    return scaled_int8_mm_reference(a, b, scale_a, scale_b, bias, out_dtype)


@triton_op("lowbit::quantize_rows_int8", mutates_args=())
def quantize_rows(
    x: torch.Tensor, stochastic: bool = False, seed: int = 0, zero_cols: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row (per-token) absmax int8 codes and scales of a 2-D tensor, in one pass on CUDA.
    `stochastic=True` rounds stochastically (unbiased), seeded by `seed` (< 0: a fresh draw from
    torch's generator); the draws differ between the Triton and the reference path, their
    distribution does not. `zero_cols` (bool [N]): columns taken as 0 (LLM.int8()'s outlier columns)."""
    if zero_cols is not None and (zero_cols.dtype != torch.bool or zero_cols.shape != (x.shape[-1],)):
        raise ValueError(f"zero_cols must be a bool mask of x's {x.shape[-1]} columns, got {zero_cols.dtype} {tuple(zero_cols.shape)}")
    if use_triton(x):
        return quantize_rows_triton(x, stochastic, seed, zero_cols)
    return _quantize_rows_reference_op(x if zero_cols is None else x.masked_fill(zero_cols, 0), stochastic, seed)
