"""Experiment (session 13): a persistent, ping-pong warp-specialized INT8 matmul in Gluon (Triton 3.6), the
schedule CUTLASS uses for Hopper GEMMs, against lowbit's persistent TMA kernel (`ops.int8._scaled_mm_tma_kernel`).

Why: ncu on the TMA kernel (32768 x 1536 x 1536, bf16 out; session 13 call 1) reads L2 throughput 42 % and SM
throughput 58 % of peak at ~1070 TOP/s and calls it latency-bound, so the L2 does not cap it; a schedule that keeps
the tensor cores busy through the epilogue could. Session 13 call 1 also saw Gluon's explicit warp specialization
run, correct, on the H200 (`_exp_gluon_ws_mm.py`, one tile a program: 742 against 1068 TOP/s).

The schedule: each program walks output tiles `programs` apart; its local tiles alternate between two consumer
warpgroups (the default partition and a worker), each holding a 128 x 128 int32 accumulator (128 registers a
thread). One load warp fills a ring of STAGES slots through TMA in tile order, so consumer 1's MMAs start as
consumer 0's end and each consumer's epilogue (scales, bf16, a TMA store from its own shared buffer) overlaps the
other's MMAs.

    python3 benchmarks/_exp_gluon_pingpong.py --out $OUT/pingpong.json    # on a GPU
    python3 benchmarks/_exp_gluon_pingpong.py --compile-only              # sm_90 on the CPU: SASS facts
"""

from __future__ import annotations

import argparse
import json

import torch
import triton
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import (
    fence_async_shared, mbarrier, tma, warpgroup_mma, warpgroup_mma_wait)


@gluon.jit
def _tile_coords(tile, M, N, BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, GROUP_M: gl.constexpr):
    """`tiles.grouped_tile`'s order: GROUP_M row-tiles share column-tiles of B while they sit in the L2."""
    num_pid_n = gl.cdiv(N, BLOCK_N)
    per_group = GROUP_M * num_pid_n
    first_m = (tile // per_group) * GROUP_M
    group_rows = gl.minimum(gl.cdiv(M, BLOCK_M) - first_m, GROUP_M)
    return (first_m + (tile % per_group) % group_rows) * BLOCK_M, ((tile % per_group) // group_rows) * BLOCK_N


@gluon.jit
def _loader(a_desc, b_desc, a_bufs, b_bufs, ready, empty, M, N, K, PROGRAMS,
            GROUP_M: gl.constexpr, STAGES: gl.constexpr):
    BLOCK_M: gl.constexpr = a_desc.block_type.shape[0]
    BLOCK_K: gl.constexpr = a_desc.block_type.shape[1]
    BLOCK_N: gl.constexpr = b_desc.block_type.shape[0]
    n_k = gl.cdiv(K, BLOCK_K)
    tiles = gl.cdiv(M, BLOCK_M) * gl.cdiv(N, BLOCK_N)
    g = 0  # this program's K-step count, across its tiles: the ring's position
    for tile in range(gl.program_id(0), tiles, PROGRAMS):
        om, on = _tile_coords(tile, M, N, BLOCK_M, BLOCK_N, GROUP_M)
        for i in range(n_k):
            s = g % STAGES
            mbarrier.wait(empty.index(s), ((g // STAGES) & 1) ^ 1)  # a fresh barrier counts as freed once
            mbarrier.expect(ready.index(s), a_desc.block_type.nbytes + b_desc.block_type.nbytes)
            tma.async_copy_global_to_shared(a_desc, [om, i * BLOCK_K], ready.index(s), a_bufs.index(s))
            tma.async_copy_global_to_shared(b_desc, [on, i * BLOCK_K], ready.index(s), b_bufs.index(s))
            g += 1


@gluon.jit
def _consumer(a_bufs, b_bufs, ready, empty, order, c_desc, c_buf, c_ptr, sa_ptr, sb_ptr, M, N, K, PROGRAMS,
              WHICH: gl.constexpr, CONSUMERS: gl.constexpr, TMA_STORE: gl.constexpr, GROUP_M: gl.constexpr,
              STAGES: gl.constexpr):
    """The local tiles WHICH, WHICH + CONSUMERS, ...: MMAs over the ring's slots of that tile, then its epilogue.
    Two consumers take turns at the MMAs (`order`: a barrier each, arrived when its MMAs of a tile are done): a
    consumer waiting on a slot more than one lap of the ring ahead would read a parity left by an older phase."""
    BLOCK_M: gl.constexpr = c_desc.block_type.shape[0]
    BLOCK_N: gl.constexpr = c_desc.block_type.shape[1]
    BLOCK_K: gl.constexpr = a_bufs.type.shape[2]
    layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1], instr_shape=[16, BLOCK_N, 32])
    n_k = gl.cdiv(K, BLOCK_K)
    tiles = gl.cdiv(M, BLOCK_M) * gl.cdiv(N, BLOCK_N)
    j = WHICH
    for tile in range(gl.program_id(0) + WHICH * PROGRAMS, tiles, CONSUMERS * PROGRAMS):
        om, on = _tile_coords(tile, M, N, BLOCK_M, BLOCK_N, GROUP_M)
        acc = gl.zeros((BLOCK_M, BLOCK_N), dtype=gl.int32, layout=layout)
        g = j * n_k
        if CONSUMERS == 2 and j > 0:  # the other consumer's MMAs of the tile before this one are done
            mbarrier.wait(order.index(1 - WHICH), ((j - 2 + WHICH) // 2) & 1)
        for i in range(n_k):
            s = g % STAGES
            mbarrier.wait(ready.index(s), (g // STAGES) & 1)
            acc = warpgroup_mma(a_bufs.index(s), b_bufs.index(s).permute((1, 0)), acc, is_async=True)
            acc = warpgroup_mma_wait(1, deps=(acc,))  # the MMA before this one is done: its slot is free
            mbarrier.arrive(empty.index((g + STAGES - 1) % STAGES), pred=i > 0)
            g += 1
        acc = warpgroup_mma_wait(0, deps=(acc,))
        mbarrier.arrive(empty.index((g + STAGES - 1) % STAGES))
        if CONSUMERS == 2:
            mbarrier.arrive(order.index(WHICH))
        offs_m = om + gl.arange(0, BLOCK_M, layout=gl.SliceLayout(1, layout))
        offs_n = on + gl.arange(0, BLOCK_N, layout=gl.SliceLayout(0, layout))
        sa = gl.load(sa_ptr + offs_m, mask=offs_m < M, other=0.0)
        sb = gl.load(sb_ptr + offs_n, mask=offs_n < N, other=0.0)
        out = (acc.to(gl.float32) * sa[:, None] * sb[None, :]).to(c_desc.dtype)
        if TMA_STORE:
            tma.store_wait(0)  # this consumer's previous tile has left its buffer
            c_buf.store(out)
            fence_async_shared()
            tma.async_copy_shared_to_global(c_desc, [om, on], c_buf)
        else:
            mask = (offs_m < M)[:, None] & (offs_n < N)[None, :]
            gl.store(c_ptr + offs_m[:, None] * N + offs_n[None, :], out, mask=mask)
        j += CONSUMERS
    if TMA_STORE:
        tma.store_wait(0)


@gluon.jit
def pingpong_mm_kernel(a_desc, b_desc, c_desc, c_ptr, sa_ptr, sb_ptr, M, N, K, PROGRAMS,
                       GROUP_M: gl.constexpr, STAGES: gl.constexpr, CONSUMER_REGS: gl.constexpr,
                       CONSUMERS: gl.constexpr, TMA_STORE: gl.constexpr):
    BLOCK_M: gl.constexpr = a_desc.block_type.shape[0]
    BLOCK_K: gl.constexpr = a_desc.block_type.shape[1]
    BLOCK_N: gl.constexpr = b_desc.block_type.shape[0]
    a_bufs = gl.allocate_shared_memory(gl.int8, [STAGES, BLOCK_M, BLOCK_K], a_desc.layout)
    b_bufs = gl.allocate_shared_memory(gl.int8, [STAGES, BLOCK_N, BLOCK_K], b_desc.layout)
    c0 = gl.allocate_shared_memory(c_desc.dtype, [BLOCK_M, BLOCK_N], c_desc.layout)
    c1 = gl.allocate_shared_memory(c_desc.dtype, [BLOCK_M, BLOCK_N], c_desc.layout)
    ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    order = gl.allocate_shared_memory(gl.int64, [2, 1], mbarrier.MBarrierLayout())
    for s in gl.static_range(STAGES):
        mbarrier.init(ready.index(s), count=1)
        mbarrier.init(empty.index(s), count=1)
    for c in gl.static_range(2):
        mbarrier.init(order.index(c), count=1)
    if CONSUMERS == 2:
        gl.warp_specialize([
            (_consumer, (a_bufs, b_bufs, ready, empty, order, c_desc, c0, c_ptr, sa_ptr, sb_ptr, M, N, K, PROGRAMS, 0, CONSUMERS,
                         TMA_STORE, GROUP_M, STAGES)),
            (_consumer, (a_bufs, b_bufs, ready, empty, order, c_desc, c1, c_ptr, sa_ptr, sb_ptr, M, N, K, PROGRAMS, 1, CONSUMERS,
                         TMA_STORE, GROUP_M, STAGES)),
            (_loader, (a_desc, b_desc, a_bufs, b_bufs, ready, empty, M, N, K, PROGRAMS, GROUP_M, STAGES)),
        ], [4, 1], [CONSUMER_REGS, 40])
    else:
        gl.warp_specialize([
            (_consumer, (a_bufs, b_bufs, ready, empty, order, c_desc, c0, c_ptr, sa_ptr, sb_ptr, M, N, K, PROGRAMS, 0, CONSUMERS,
                         TMA_STORE, GROUP_M, STAGES)),
            (_loader, (a_desc, b_desc, a_bufs, b_bufs, ready, empty, M, N, K, PROGRAMS, GROUP_M, STAGES)),
        ], [1], [40])


def _desc(t, block, dtype):
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

    return TensorDescriptor.from_tensor(t, block, gl.NVMMASharedLayout.get_default_for(block, dtype))


def pingpong_mm(a, bt, sa, sb, out_dtype=torch.bfloat16, tile=(128, 128, 128, 4), group_m=8, regs=232, programs=None,
                consumers=2, tma_store=True):
    """a [M, K] @ bt [N, K]ᵀ (int8, K-major) · sa[:, None] · sb[None, :] → out_dtype."""
    bm, bn, bk, stages = tile
    m, k = a.shape
    n = bt.shape[0]
    c = torch.empty(m, n, device=a.device, dtype=out_dtype)
    gl_out = {torch.bfloat16: gl.bfloat16, torch.float16: gl.float16, torch.float32: gl.float32}[out_dtype]
    programs = programs or min(torch.cuda.get_device_properties(a.device).multi_processor_count,
                               triton.cdiv(m, bm) * triton.cdiv(n, bn))
    pingpong_mm_kernel[(programs,)](
        _desc(a, [bm, bk], gl.int8), _desc(bt, [bn, bk], gl.int8), _desc(c, [bm, bn], gl_out), c, sa, sb, m, n, k, programs,
        GROUP_M=group_m, STAGES=stages, CONSUMER_REGS=regs, CONSUMERS=consumers, TMA_STORE=tma_store, num_warps=4)
    return c


def compile_only():
    """Compile for sm_90 without a GPU and print what came out."""
    import re
    import sys
    from pathlib import Path

    from triton.backends.compiler import GPUTarget
    from triton.experimental.gluon._runtime import GluonASTSource

    sys.path.insert(0, str(Path(__file__).parent))
    from sm90_asm import registers, sass

    for bm, bn, bk, stages, regs, consumers, store in [(128, 128, 128, 4, 232, 2, True), (128, 128, 128, 4, 232, 1, True),
                                                       (128, 128, 128, 4, 232, 2, False), (128, 128, 128, 4, 232, 1, False)]:
        def desc(rows, cols, ty="i8", dtype=gl.int8):  # a Gluon descriptor's type names its shared-memory layout
            return f"tensordesc<{ty}[{rows},{cols}],{gl.NVMMASharedLayout.get_default_for([rows, cols], dtype)!r}>"

        try:
            src = GluonASTSource(fn=pingpong_mm_kernel, signature={
                "a_desc": desc(bm, bk), "b_desc": desc(bn, bk), "c_desc": desc(bm, bn, "bf16", gl.bfloat16), "c_ptr": "*bf16",
                "sa_ptr": "*fp32", "sb_ptr": "*fp32", "M": "i32", "N": "i32", "K": "i32", "PROGRAMS": "i32",
                "GROUP_M": "constexpr", "STAGES": "constexpr", "CONSUMER_REGS": "constexpr",
                "CONSUMERS": "constexpr", "TMA_STORE": "constexpr"},
                constexprs={"GROUP_M": 8, "STAGES": stages, "CONSUMER_REGS": regs, "CONSUMERS": consumers, "TMA_STORE": store})
            c = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": 4})
            s = sass(c)
            print((bm, bn, bk, stages, regs, consumers, store), "warps", c.metadata.num_warps, "regs", registers(c), "smem", c.metadata.shared,
                  "IGMMA", len(re.findall("IGMMA", s)), "SETMAXREG", re.findall(r"USETMAXREG[^;]*", s), "spills", "STL" in s,
                  flush=True)
        except Exception as exc:  # noqa: BLE001 - a probe prints what failed
            print((bm, bn, bk, stages, regs, consumers, store), "FAILED", str(exc).strip().splitlines()[-1][:400], flush=True)


SHAPES = [(32768, 1536, 1536), (32768, 6144, 1536), (32768, 1536, 6144), (1536, 1536, 32768), (6144, 1536, 32768),
          (1536, 6144, 32768), (4096, 4096, 4096), (8192, 8192, 8192), (300, 520, 4096)]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out")
    p.add_argument("--compile-only", action="store_true")
    p.add_argument("--variants", nargs="+", default=["128x4x8x232x2x1"],
                   help="BLOCK_K x STAGES x GROUP_M x consumer registers x consumers x TMA store (0/1)")
    p.add_argument("--probe", action="store_true", help="one 4096^3 shape only (several tiles a program): does each variant finish?")
    args = p.parse_args()
    if args.compile_only:
        compile_only()
        return
    from lowbit.ops import int8 as int8_ops
    from sweep import write

    rows = []
    gen = torch.Generator(device="cuda").manual_seed(0)
    for m, n, k in [(4096, 4096, 4096)] if args.probe else SHAPES:
        a = torch.randint(-127, 128, (m, k), device="cuda", dtype=torch.int8, generator=gen)
        bt = torch.randint(-127, 128, (n, k), device="cuda", dtype=torch.int8, generator=gen)
        sa = torch.rand(m, device="cuda", generator=gen) * 1e-3
        sb = torch.rand(n, device="cuda", generator=gen) * 1e-3
        ref = int8_ops.scaled_int8_mm_tma(a, bt, sa, sb, None, torch.bfloat16)
        row = dict(m=m, n=n, k=k)
        flops = 2 * m * n * k
        row["tma_now"] = round(flops / (triton.testing.do_bench(
            lambda: int8_ops.scaled_int8_mm_tma(a, bt, sa, sb, None, torch.bfloat16), rep=60) * 1e-3) / 1e12, 1)
        for name in args.variants:
            bk, stages, group_m, regs, consumers, store = (int(v) for v in name.split("x"))

            def run():
                return pingpong_mm(a, bt, sa, sb, tile=(128, 128, bk, stages), group_m=group_m, regs=regs,
                                   consumers=consumers, tma_store=bool(store))
            try:
                out = run()
                torch.cuda.synchronize()
                row[f"{name}_equal"] = torch.equal(out, ref)
                row[name] = round(flops / (triton.testing.do_bench(run, rep=60) * 1e-3) / 1e12, 1)
            except Exception as exc:  # noqa: BLE001 - a sweep records what failed
                row[name] = f"FAILED {str(exc).strip().splitlines()[-1][:200]}"
        print(json.dumps(row), flush=True)
        rows.append(row)
        if args.out:
            write(args.out, rows)


if __name__ == "__main__":
    main()
