"""Experiment (session 12, compiled for sm_90 on the CPU only; not yet run on a GPU): an explicitly warp-specialized
INT8 matmul in Gluon (Triton 3.6's `triton.experimental.gluon`), to learn whether explicit `gl.warp_specialize`
runs on the H200 where `tl.range(warp_specialize=True)`'s matmuls hung (docs/benchmarks/README.md, session 12).

One output tile of BLOCK_M x BLOCK_N a program, K-major int8 operands through TMA, int32 accumulation:
- a 1-warp load partition fills a ring of STAGES shared-memory slots (an mbarrier "ready" a slot, signalled by the
  copy engine's byte count; "empty" a slot, signalled by the consumer);
- the default partition (num_warps) waits on "ready", issues the asynchronous warpgroup MMA, retires the previous
  one (`warpgroup_mma_wait(1)`) and frees its slot, then applies the scales and stores the tile.
Checked against the persistent TMA kernel to the bit (unit scales) and timed against it.

    python3 benchmarks/_exp_gluon_ws_mm.py --out $OUT/gluon-ws.json     # on a GPU
    python3 benchmarks/_exp_gluon_ws_mm.py --compile-only               # sm_90 on the CPU: SASS facts
"""

from __future__ import annotations

import argparse
import json

import torch
import triton
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import mbarrier, tma, warpgroup_mma, warpgroup_mma_wait


@gluon.jit
def _load_partition(a_desc, b_desc, a_bufs, b_bufs, ready, empty, K, BLOCK_K: gl.constexpr, STAGES: gl.constexpr):
    om = gl.program_id(0) * a_desc.block_type.shape[0]
    on = gl.program_id(1) * b_desc.block_type.shape[0]
    for i in range(gl.cdiv(K, BLOCK_K)):
        s = i % STAGES
        mbarrier.wait(empty.index(s), ((i // STAGES) & 1) ^ 1)  # a fresh barrier counts as freed once
        mbarrier.expect(ready.index(s), a_desc.block_type.nbytes + b_desc.block_type.nbytes)
        tma.async_copy_global_to_shared(a_desc, [om, i * BLOCK_K], ready.index(s), a_bufs.index(s))
        tma.async_copy_global_to_shared(b_desc, [on, i * BLOCK_K], ready.index(s), b_bufs.index(s))


@gluon.jit
def _mma_partition(a_bufs, b_bufs, ready, empty, c_ptr, sa_ptr, sb_ptr, M, N, K,
                   BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, BLOCK_K: gl.constexpr, STAGES: gl.constexpr,
                   num_warps: gl.constexpr):
    # int8 MMA instructions of up to 128 columns (256 failed in Triton 3.6's PTX table for sm_90)
    layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[num_warps, 1], instr_shape=[16, min(BLOCK_N, 128), 32])
    acc = gl.zeros((BLOCK_M, BLOCK_N), dtype=gl.int32, layout=layout)
    n_k = gl.cdiv(K, BLOCK_K)
    for i in range(n_k):
        s = i % STAGES
        mbarrier.wait(ready.index(s), (i // STAGES) & 1)
        acc = warpgroup_mma(a_bufs.index(s), b_bufs.index(s).permute((1, 0)), acc, is_async=True)
        acc = warpgroup_mma_wait(1, deps=(acc,))  # the MMA before this one is done: its slot is free
        mbarrier.arrive(empty.index((i + STAGES - 1) % STAGES), pred=i > 0)
    acc = warpgroup_mma_wait(0, deps=(acc,))
    offs_m = gl.program_id(0) * BLOCK_M + gl.arange(0, BLOCK_M, layout=gl.SliceLayout(1, layout))
    offs_n = gl.program_id(1) * BLOCK_N + gl.arange(0, BLOCK_N, layout=gl.SliceLayout(0, layout))
    sa = gl.load(sa_ptr + offs_m, mask=offs_m < M, other=0.0)
    sb = gl.load(sb_ptr + offs_n, mask=offs_n < N, other=0.0)
    out = acc.to(gl.float32) * sa[:, None] * sb[None, :]
    mask = (offs_m < M)[:, None] & (offs_n < N)[None, :]
    gl.store(c_ptr + offs_m[:, None] * N + offs_n[None, :], out.to(c_ptr.dtype.element_ty), mask=mask)


@gluon.jit
def gluon_ws_mm_kernel(a_desc, b_desc, c_ptr, sa_ptr, sb_ptr, M, N, K, STAGES: gl.constexpr, num_warps: gl.constexpr):
    BLOCK_M: gl.constexpr = a_desc.block_type.shape[0]
    BLOCK_K: gl.constexpr = a_desc.block_type.shape[1]
    BLOCK_N: gl.constexpr = b_desc.block_type.shape[0]
    a_bufs = gl.allocate_shared_memory(gl.int8, [STAGES, BLOCK_M, BLOCK_K], a_desc.layout)
    b_bufs = gl.allocate_shared_memory(gl.int8, [STAGES, BLOCK_N, BLOCK_K], b_desc.layout)
    ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    for s in gl.static_range(STAGES):
        mbarrier.init(ready.index(s), count=1)
        mbarrier.init(empty.index(s), count=1)
    gl.warp_specialize([
        (_mma_partition, (a_bufs, b_bufs, ready, empty, c_ptr, sa_ptr, sb_ptr, M, N, K, BLOCK_M, BLOCK_N, BLOCK_K, STAGES, num_warps)),
        (_load_partition, (a_desc, b_desc, a_bufs, b_bufs, ready, empty, K, BLOCK_K, STAGES)),
    ], [1], [40])


def descriptors(a, bt, block_m, block_n, block_k):
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

    a_layout = gl.NVMMASharedLayout.get_default_for([block_m, block_k], gl.int8)
    b_layout = gl.NVMMASharedLayout.get_default_for([block_n, block_k], gl.int8)
    return TensorDescriptor.from_tensor(a, [block_m, block_k], a_layout), TensorDescriptor.from_tensor(bt, [block_n, block_k], b_layout)


def gluon_ws_mm(a, bt, sa, sb, tile=(128, 256, 128, 3), num_warps=8, out_dtype=torch.bfloat16):
    bm, bn, bk, stages = tile
    m, k = a.shape
    n = bt.shape[0]
    c = torch.empty(m, n, device=a.device, dtype=out_dtype)
    a_desc, b_desc = descriptors(a, bt, bm, bn, bk)
    gluon_ws_mm_kernel[(triton.cdiv(m, bm), triton.cdiv(n, bn))](a_desc, b_desc, c, sa, sb, m, n, k, STAGES=stages, num_warps=num_warps)
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

    for bm, bn, bk, stages, warps in [(128, 256, 128, 3, 8), (128, 128, 128, 4, 8), (64, 256, 128, 4, 4)]:
        def desc(rows):  # a Gluon descriptor's type names its shared-memory layout
            return f"tensordesc<i8[{rows},{bk}],{gl.NVMMASharedLayout.get_default_for([rows, bk], gl.int8)!r}>"

        try:
            src = GluonASTSource(fn=gluon_ws_mm_kernel, signature={
                "a_desc": desc(bm), "b_desc": desc(bn), "c_ptr": "*bf16", "sa_ptr": "*fp32",
                "sb_ptr": "*fp32", "M": "i32", "N": "i32", "K": "i32", "STAGES": "constexpr", "num_warps": "constexpr"},
                constexprs={"STAGES": stages, "num_warps": warps})
            c = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": warps})
            s = sass(c)
            print((bm, bn, bk, stages, warps), "warps", c.metadata.num_warps, "regs", registers(c), "smem", c.metadata.shared,
                  "IGMMA", len(re.findall("IGMMA", s)), "SETMAXREG", len(re.findall("USETMAXREG", s)), "spills", "STL" in s)
        except Exception as exc:  # noqa: BLE001 - a probe prints what failed
            print((bm, bn, bk, stages, warps), "FAILED", str(exc).strip().splitlines()[-1][:300])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out")
    p.add_argument("--compile-only", action="store_true")
    args = p.parse_args()
    if args.compile_only:
        compile_only()
        return
    from lowbit.ops import int8 as int8_ops
    from sweep import write

    rows = []
    gen = torch.Generator(device="cuda").manual_seed(0)
    for m, n, k in [(1024, 1024, 1024), (32768, 1536, 1536), (32768, 6144, 1536), (32768, 1536, 6144)]:
        a = torch.randint(-127, 128, (m, k), device="cuda", dtype=torch.int8, generator=gen)
        bt = torch.randint(-127, 128, (n, k), device="cuda", dtype=torch.int8, generator=gen)
        ones_m, ones_n = torch.ones(m, device="cuda"), torch.ones(n, device="cuda")
        out = gluon_ws_mm(a, bt, ones_m, ones_n, out_dtype=torch.float32)
        torch.cuda.synchronize()
        # unit scales: the int32 sums rounded once to fp32, as the TMA kernel rounds them
        ref = int8_ops.scaled_int8_mm_tma(a, bt, ones_m, ones_n, None, torch.float32)
        row = dict(m=m, n=n, k=k, equal_to_tma_kernel=torch.equal(out, ref))
        flops = 2 * m * n * k
        for name, fn in [("gluon_ws", lambda: gluon_ws_mm(a, bt, ones_m, ones_n)),
                         ("tma_now", lambda: int8_ops.scaled_int8_mm_tma(a, bt, ones_m, ones_n, None, torch.bfloat16))]:
            row[name] = round(flops / (triton.testing.do_bench(fn, rep=60) * 1e-3) / 1e12, 1)
        print(json.dumps(row), flush=True)
        rows.append(row)
        if args.out:
            write(args.out, rows)


if __name__ == "__main__":
    main()
