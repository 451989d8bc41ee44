"""The scaled INT8 matmul on Hopper (sm_90), written in Gluon (Triton's explicit-layout dialect) so that warps can
be given roles: persistent and warp-specialized in CUTLASS's "ping-pong" schedule.

    out[m, n] = (Σ_k a[m, k] · bt[n, k]) · sa[m] · sb[n] (+ bias[n])   (a, bt int8 and K-major)

Why not the plain Triton kernel (`int8._scaled_mm_tma_kernel`): ncu read it latency-bound at ~1070 TOP/s (L2 42 %,
SM 58 % of peak; docs/benchmarks/README.md, session 13), and Triton 3.6 cannot warp-specialize a Hopper matmul
(`tl.range(warp_specialize=True)`'s hung, session 12). Here each program walks output tiles `programs` apart:
- one load warp streams both operands' K-steps through TMA into a ring of STAGES shared-memory slots (an mbarrier
  "ready" a slot, completed by the copy's byte count; "empty" a slot, arrived by the consumer that read it);
- two consumer warpgroups take the program's tiles in turn, each with its own 128 × 128 int32 accumulator. They take
  turns at the MMAs too (an "order" barrier each), so one consumer's epilogue (scales, bias, the store) runs while
  the other's MMAs keep the tensor cores busy. Taking turns is also what keeps the ring's phase parities
  unambiguous: a consumer that waited on a slot a whole lap ahead would read an older phase as its own (the launch
  failure of session 13's call 2).
On the H200 (session 13, call 5) it gave 1260-1390 TOP/s on the forward shapes of a llama2-1b training step
where the Triton kernel gave 1049-1234, and 911-1394 on its weight gradients (720-1008); bit-equal outputs.

Gluon kernels do not run in Triton's interpreter: CI compiles this one for sm_90 on the CPU, and the GPU tests of
`ops.int8.scaled_int8_mm_tma` run it.
"""

from __future__ import annotations

import functools

import torch

from .tiles import cdiv, sm_count

try:
    from triton.experimental import gluon
    from triton.experimental.gluon import language as gl
    from triton.experimental.gluon.language.nvidia.hopper import (
        fence_async_shared, mbarrier, tma, warpgroup_mma, warpgroup_mma_wait)
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor
except ImportError:  # a Triton without Gluon's Hopper module: `ops.int8` keeps its Triton TMA kernel
    gluon = None

BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M = 128, 128, 128, 8
SHARED_BYTES = 227 * 1024 - 1024  # what an sm_90 CTA may use, less the barriers'
CONSUMER_REGS = 232  # a thread of the second consumer (its accumulator alone is 128); the load warp gets 40
# FP8 sums: how many products along K the MMA adds in its reduced precision before they go into full fp32. Once a
# K-step (128) compiles without spills; 32 and 64 (a second accumulator live longer) spill (sm_90, on the CPU).
FP8_PROMOTE = BLOCK_K

if gluon is not None:

    @gluon.jit
    def _tile_origin(tile, M, N, BM: gl.constexpr, BN: gl.constexpr, GROUP: gl.constexpr):
        """The first row and column of output tile `tile`, in `tiles.grouped_tile`'s order: GROUP row-tiles share
        the column-tiles of B while those sit in the L2."""
        per_group = GROUP * gl.cdiv(N, BN)
        first_m = (tile // per_group) * GROUP
        group_rows = gl.minimum(gl.cdiv(M, BM) - first_m, GROUP)
        return (first_m + (tile % per_group) % group_rows) * BM, ((tile % per_group) // group_rows) * BN

    @gluon.jit
    def _load_warp(a_desc, b_desc, a_bufs, b_bufs, ready, empty, M, N, K, PROGRAMS,
                   GROUP: gl.constexpr, NUM_STAGES: gl.constexpr):
        BM: gl.constexpr = a_desc.block_type.shape[0]
        BK: gl.constexpr = a_desc.block_type.shape[1]
        BN: gl.constexpr = b_desc.block_type.shape[0]
        n_k = gl.cdiv(K, BK)
        g = 0  # K-steps loaded so far by this program, across its tiles: the position in the ring
        for tile in range(gl.program_id(0), gl.cdiv(M, BM) * gl.cdiv(N, BN), PROGRAMS):
            om, on = _tile_origin(tile, M, N, BM, BN, GROUP)
            for i in range(n_k):
                s = g % NUM_STAGES
                mbarrier.wait(empty.index(s), ((g // NUM_STAGES) & 1) ^ 1)  # a fresh barrier counts as freed once
                mbarrier.expect(ready.index(s), a_desc.block_type.nbytes + b_desc.block_type.nbytes)
                tma.async_copy_global_to_shared(a_desc, [om, i * BK], ready.index(s), a_bufs.index(s))
                tma.async_copy_global_to_shared(b_desc, [on, i * BK], ready.index(s), b_bufs.index(s))
                g += 1

    @gluon.jit
    def _consumer(a_bufs, b_bufs, ready, empty, order, c_desc, c_buf, sa_ptr, sb_ptr, bias_ptr, M, N, K,
                  PROGRAMS, WHICH: gl.constexpr, HAS_BIAS: gl.constexpr, GROUP: gl.constexpr, NUM_STAGES: gl.constexpr,
                  IMPRECISE: gl.constexpr):
        """The program's tiles WHICH, WHICH + 2, ...: MMAs over that tile's ring slots, then its epilogue."""
        BM: gl.constexpr = a_bufs.type.shape[1]
        BN: gl.constexpr = b_bufs.type.shape[1]
        BK: gl.constexpr = a_bufs.type.shape[2]
        layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1], instr_shape=[16, BN, 32])
        n_k = gl.cdiv(K, BK)
        j = WHICH  # the program's tile count, this tile's place in it
        for tile in range(gl.program_id(0) + WHICH * PROGRAMS, gl.cdiv(M, BM) * gl.cdiv(N, BN), 2 * PROGRAMS):
            om, on = _tile_origin(tile, M, N, BM, BN, GROUP)
            acc = gl.zeros((BM, BN), dtype=gl.int32 if a_bufs.dtype == gl.int8 else gl.float32, layout=layout)
            if j > 0:  # the other consumer has issued and retired its MMAs of tile j - 1
                mbarrier.wait(order.index(1 - WHICH), ((j - 2 + WHICH) // 2) & 1)
            g = j * n_k
            for i in range(n_k):
                s = g % NUM_STAGES
                mbarrier.wait(ready.index(s), (g // NUM_STAGES) & 1)
                acc = warpgroup_mma(a_bufs.index(s), b_bufs.index(s).permute((1, 0)), acc, is_async=True,
                                    max_num_imprecise_acc=IMPRECISE)
                acc = warpgroup_mma_wait(1, deps=(acc,))  # the MMA before this one is done: its slot is free
                mbarrier.arrive(empty.index((g + NUM_STAGES - 1) % NUM_STAGES), pred=i > 0)
                g += 1
            acc = warpgroup_mma_wait(0, deps=(acc,))
            mbarrier.arrive(empty.index((g + NUM_STAGES - 1) % NUM_STAGES))
            mbarrier.arrive(order.index(WHICH))
            offs_m = om + gl.arange(0, BM, layout=gl.SliceLayout(1, layout))
            offs_n = on + gl.arange(0, BN, layout=gl.SliceLayout(0, layout))
            sa = gl.load(sa_ptr + offs_m, mask=offs_m < M, other=0.0)
            sb = gl.load(sb_ptr + offs_n, mask=offs_n < N, other=0.0)
            out = acc.to(gl.float32) * sa[:, None] * sb[None, :]  # `int8._scaled`'s order of rounding
            if HAS_BIAS:
                out += gl.load(bias_ptr + offs_n, mask=offs_n < N, other=0.0)[None, :]
            tma.store_wait(0)  # this consumer's previous tile has left its buffer
            c_buf.store(out.to(c_desc.dtype))
            fence_async_shared()
            tma.async_copy_shared_to_global(c_desc, [om, on], c_buf)  # the copy engine clips the edges
            j += 2
        tma.store_wait(0)

    @gluon.jit
    def _pingpong_mm_kernel(a_desc, b_desc, c_desc, sa_ptr, sb_ptr, bias_ptr, M, N, K, PROGRAMS,
                            HAS_BIAS: gl.constexpr, GROUP: gl.constexpr, NUM_STAGES: gl.constexpr, REGS: gl.constexpr,
                            IMPRECISE: gl.constexpr = 0):
        """int8 operands (int32 sums), or FP8 ones (fp32 sums, which the MMA keeps in reduced precision for at most
        IMPRECISE products along K before adding them into full fp32: 128 promotes once a K-step; compiled on the
        CPU and timed by `benchmarks/_exp_fp8_pingpong.py` only)."""
        BM: gl.constexpr = a_desc.block_type.shape[0]
        BK: gl.constexpr = a_desc.block_type.shape[1]
        BN: gl.constexpr = b_desc.block_type.shape[0]
        a_bufs = gl.allocate_shared_memory(a_desc.dtype, [NUM_STAGES, BM, BK], a_desc.layout)
        b_bufs = gl.allocate_shared_memory(b_desc.dtype, [NUM_STAGES, BN, BK], b_desc.layout)
        c0 = gl.allocate_shared_memory(c_desc.dtype, [BM, BN], c_desc.layout)  # an output tile a consumer
        c1 = gl.allocate_shared_memory(c_desc.dtype, [BM, BN], c_desc.layout)
        ready = gl.allocate_shared_memory(gl.int64, [NUM_STAGES, 1], mbarrier.MBarrierLayout())
        empty = gl.allocate_shared_memory(gl.int64, [NUM_STAGES, 1], mbarrier.MBarrierLayout())
        order = gl.allocate_shared_memory(gl.int64, [2, 1], mbarrier.MBarrierLayout())
        for s in gl.static_range(NUM_STAGES):
            mbarrier.init(ready.index(s), count=1)
            mbarrier.init(empty.index(s), count=1)
        for c in gl.static_range(2):
            mbarrier.init(order.index(c), count=1)
        gl.warp_specialize([
            (_consumer, (a_bufs, b_bufs, ready, empty, order, c_desc, c0, sa_ptr, sb_ptr, bias_ptr, M, N, K,
                         PROGRAMS, 0, HAS_BIAS, GROUP, NUM_STAGES, IMPRECISE)),
            (_consumer, (a_bufs, b_bufs, ready, empty, order, c_desc, c1, sa_ptr, sb_ptr, bias_ptr, M, N, K,
                         PROGRAMS, 1, HAS_BIAS, GROUP, NUM_STAGES, IMPRECISE)),
            (_load_warp, (a_desc, b_desc, a_bufs, b_bufs, ready, empty, M, N, K, PROGRAMS, GROUP, NUM_STAGES)),
        ], [4, 1], [REGS, 40])


def stages(out_dtype: torch.dtype) -> int:
    """Operand slots (32 KB each) beside the consumers' two output tiles: 5 for 2-byte outputs, 3 for fp32."""
    return (SHARED_BYTES - 2 * BLOCK_M * BLOCK_N * out_dtype.itemsize) // ((BLOCK_M + BLOCK_N) * BLOCK_K)


@functools.cache
def _shared_layout(block: tuple[int, int], dtype: torch.dtype) -> "gl.NVMMASharedLayout":
    """Cached: Gluon computes it in ~11 µs of Python, three a call (the H200's eager launch: ~72 µs against the
    Triton kernel's ~40, session 13's call 6)."""
    gl_dtype = {torch.int8: gl.int8, torch.float8_e4m3fn: gl.float8e4nv, torch.float8_e5m2: gl.float8e5,
                torch.bfloat16: gl.bfloat16, torch.float16: gl.float16, torch.float32: gl.float32}[dtype]
    return gl.NVMMASharedLayout.get_default_for(list(block), gl_dtype)


def _descriptor(t: torch.Tensor, block: tuple[int, int]) -> "TensorDescriptor":
    return TensorDescriptor.from_tensor(t, list(block), _shared_layout(block, t.dtype))


def scaled_mm_pingpong(
    a: torch.Tensor, bt: torch.Tensor, scale_a: torch.Tensor, scale_b: torch.Tensor,
    bias: torch.Tensor | None, out_dtype: torch.dtype,
) -> torch.Tensor:
    """a [M, K] @ bt [N, K]ᵀ · scales (+ bias): 8-bit operands K-major and 16-byte aligned (`int8.tma_takes`), fp32
    scales and bias, on an sm_90 GPU. int8: bit-equal to `int8.scaled_int8_mm_tma`'s Triton kernel. FP8 (E4M3 or
    E5M2, sums promoted to full fp32 once a K-step, `FP8_PROMOTE`): no library caller yet; on the GPU only by
    `benchmarks/_exp_fp8_pingpong.py`, which was not run in session 13 (no device time left)."""
    m, k = a.shape
    n = bt.shape[0]
    out = torch.empty(m, n, device=a.device, dtype=out_dtype)
    programs = max(1, min(sm_count(a.device), cdiv(m, BLOCK_M) * cdiv(n, BLOCK_N)))
    _pingpong_mm_kernel[(programs,)](
        _descriptor(a, (BLOCK_M, BLOCK_K)), _descriptor(bt, (BLOCK_N, BLOCK_K)),
        _descriptor(out, (BLOCK_M, BLOCK_N)), scale_a, scale_b, bias if bias is not None else scale_b, m, n, k,
        programs, HAS_BIAS=bias is not None, GROUP=GROUP_M, NUM_STAGES=stages(out_dtype), REGS=CONSUMER_REGS,
        IMPRECISE=0 if a.dtype == torch.int8 else FP8_PROMOTE, num_warps=4)
    return out
