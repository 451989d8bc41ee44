"""Experiment (session 13, compiled for sm_90 on the CPU only; not yet run: no device time was left): a W4A16 GEMM in
Gluon with the weights as the MMA's register operand (the layout of Machete and of lowbit's Triton swapped kernel),
so that dequantized weights never touch shared memory.

    outᵀ[n, m] = Σ_k W[n, k] · x[m, k]      W[n, k] = (c[n, k] − z[n, g]) · s[n, g]   (4-bit codes two a byte)

Why (docs/benchmarks/README.md, session 13, calls 7-9): the dequantize-into-shared-memory kernel (`_exp_gluon_w4.py`)
stalled on shared memory (the busiest pipe, bank conflicts) because every MMA there read both operands from it.
Here one warpgroup does both jobs, overlapped by the asynchronous MMA: while the MMA of K-step i runs on registers
holding W's step-i tile, the warpgroup dequantizes step i + 1 from the packed codes in shared memory.

The layout fact this rests on, checked at compile time (`gl.convert_layout(..., assert_trivial=True)` below): bytes
loaded in the MMA's A-operand layout for 8-bit elements one to a slot (`DotOperandLayout(0, mma, k_width=1)` over
[BN, BK/2]), split into their two nibbles and joined along K, are exactly the A-operand layout of 16-bit elements
(`k_width=2`): byte j holds K columns 2j and 2j + 1, the pair one thread takes. No shuffles, no shared memory.

A load warp streams x's tile [BT, BK] and the codes' tile [BN, BK/2] through TMA; the MMA warpgroup computes a
BN x BT tile of outᵀ (BN weight rows, BT tokens) and stores it transposed into out [M, N].

    python3 benchmarks/_exp_gluon_w4_rega.py --compile-only
    python3 benchmarks/_exp_gluon_w4_rega.py --out $OUT/gluon-w4-rega.json
"""

from __future__ import annotations

import argparse
import functools

import torch
import triton
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import mbarrier, warpgroup_mma, warpgroup_mma_wait

from _exp_gluon_w4 import _loads, dequantize_codes, sweep_7b_layer
from lowbit.ops.int8_hopper import _tile_origin


@gluon.jit
def _weights_of(q_bufs, s, sc, zp, BN: gl.constexpr, BK: gl.constexpr, c_layout: gl.constexpr):
    """W's step tile [BN, BK] in bf16 from ring slot s's codes, loaded in `c_layout` (the 8-bit A-operand layout)."""
    return dequantize_codes(q_bufs.index(s).load(c_layout), sc, zp, gl.bfloat16, BN, BK)


@gluon.jit
def _mma(x_bufs, q_bufs, ready, empty, out_ptr, scale_ptr, zero_ptr, M, N, K, PROGRAMS,
         GROUP_SIZE: gl.constexpr, GROUP: gl.constexpr, STAGES: gl.constexpr):
    BT: gl.constexpr = x_bufs.type.shape[1]
    BK: gl.constexpr = x_bufs.type.shape[2]
    BN: gl.constexpr = q_bufs.type.shape[1]
    mma: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1], instr_shape=[16, BT, 16])
    a_layout: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=mma, k_width=2)
    c_layout: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=mma, k_width=1)
    groups = K // GROUP_SIZE
    n_k = gl.cdiv(K, BK)
    g = 0
    for tile in range(gl.program_id(0), gl.cdiv(M, BT) * gl.cdiv(N, BN), PROGRAMS):
        om, on = _tile_origin(tile, M, N, BT, BN, GROUP)  # `_loads`' order
        offs_n = on + gl.arange(0, BN, layout=gl.SliceLayout(1, c_layout))
        n_mask = offs_n < N
        acc = gl.zeros((BN, BT), dtype=gl.float32, layout=mma)
        s = g % STAGES
        mbarrier.wait(ready.index(s), (g // STAGES) & 1)
        w = gl.convert_layout(_weights_of(q_bufs, s, gl.load(scale_ptr + offs_n * groups, mask=n_mask, other=0.0),
                                       gl.load(zero_ptr + offs_n * groups, mask=n_mask, other=0).to(gl.int32),
                                       BN, BK, c_layout), a_layout, assert_trivial=True)
        for i in range(n_k):
            # the MMA of step i on registers; x's tile, transposed, from shared memory
            acc = warpgroup_mma(w, x_bufs.index(s).permute((1, 0)), acc, is_async=True)
            # step i + 1's weights while it runs (at the last step, this step's again, not waited for)
            more = i + 1 < n_k
            grp = (gl.minimum(i + 1, n_k - 1) * BK) // GROUP_SIZE
            sc = gl.load(scale_ptr + offs_n * groups + grp, mask=n_mask, other=0.0)
            zp = gl.load(zero_ptr + offs_n * groups + grp, mask=n_mask, other=0).to(gl.int32)
            s1 = (g + more.to(gl.int32)) % STAGES
            mbarrier.wait(ready.index(s1), ((g + 1) // STAGES) & 1, pred=more)
            w_next = gl.convert_layout(_weights_of(q_bufs, s1, sc, zp, BN, BK, c_layout), a_layout, assert_trivial=True)
            acc, w = warpgroup_mma_wait(0, deps=(acc, w))
            mbarrier.arrive(empty.index(s))  # step i's x tile and codes are read
            w = w_next
            g += 1
            s = g % STAGES
        offs_n2 = on + gl.arange(0, BN, layout=gl.SliceLayout(1, mma))
        offs_m = om + gl.arange(0, BT, layout=gl.SliceLayout(0, mma))
        mask = (offs_n2 < N)[:, None] & (offs_m < M)[None, :]
        gl.store(out_ptr + offs_m[None, :] * N + offs_n2[:, None], acc.to(gl.bfloat16), mask=mask)


@gluon.jit
def w4_rega_kernel(x_desc, q_desc, out_ptr, scale_ptr, zero_ptr, M, N, K, PROGRAMS,
                   GROUP_SIZE: gl.constexpr, GROUP: gl.constexpr, STAGES: gl.constexpr):
    BT: gl.constexpr = x_desc.block_type.shape[0]
    BK: gl.constexpr = x_desc.block_type.shape[1]
    BN: gl.constexpr = q_desc.block_type.shape[0]
    x_bufs = gl.allocate_shared_memory(gl.bfloat16, [STAGES, BT, BK], x_desc.layout)
    q_bufs = gl.allocate_shared_memory(gl.uint8, [STAGES, BN, BK // 2], q_desc.layout)
    ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    for s in gl.static_range(STAGES):
        mbarrier.init(ready.index(s), count=1)
        mbarrier.init(empty.index(s), count=1)
    gl.warp_specialize([
        (_mma, (x_bufs, q_bufs, ready, empty, out_ptr, scale_ptr, zero_ptr, M, N, K, PROGRAMS, GROUP_SIZE, GROUP, STAGES)),
        (_loads, (x_desc, q_desc, x_bufs, q_bufs, ready, empty, M, N, K, PROGRAMS, GROUP, STAGES)),
    ], [1], [40])


def _desc(t, block):
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

    dtype = {torch.bfloat16: gl.bfloat16, torch.uint8: gl.uint8}[t.dtype]
    return TensorDescriptor.from_tensor(t, block, gl.NVMMASharedLayout.get_default_for(block, dtype))


def w4_rega(x, qweight, scale, zero, group_size=128, tile=(64, 128, 64, 4), group=8):
    """x [M, K] bf16 @ the 4-bit weight [N, K]ᵀ (zero points, groups of `group_size`) → [M, N] bf16."""
    bn, bt, bk, stages = tile
    m, k = x.shape
    n = qweight.shape[0]
    out = torch.empty(m, n, device=x.device, dtype=x.dtype)
    programs = min(torch.cuda.get_device_properties(x.device).multi_processor_count, triton.cdiv(n, bn) * triton.cdiv(m, bt))
    w4_rega_kernel[(programs,)](_desc(x, [bt, bk]), _desc(qweight, [bn, bk // 2]), out, scale, zero, m, n, k, programs,
                                GROUP_SIZE=group_size, GROUP=group, STAGES=stages, num_warps=4)
    return out


TILES = [(64, 16, 64, 8), (64, 64, 64, 6), (64, 128, 64, 4), (128, 128, 64, 4), (64, 256, 64, 3)]  # BN x BT x BK x STAGES


def compile_only():
    import collections
    import re
    import sys
    from pathlib import Path

    from triton.backends.compiler import GPUTarget
    from triton.experimental.gluon._runtime import GluonASTSource

    sys.path.insert(0, str(Path(__file__).parent))
    from sm90_asm import sass

    def desc(rows, cols, ty, dtype):
        return f"tensordesc<{ty}[{rows},{cols}],{gl.NVMMASharedLayout.get_default_for([rows, cols], dtype)!r}>"

    for bn, bt, bk, stages in TILES:
        try:
            src = GluonASTSource(fn=w4_rega_kernel, signature={
                "x_desc": desc(bt, bk, "bf16", gl.bfloat16), "q_desc": desc(bn, bk // 2, "u8", gl.uint8),
                "out_ptr": "*bf16", "scale_ptr": "*fp32", "zero_ptr": "*u8", "M": "i32", "N": "i32", "K": "i32",
                "PROGRAMS": "i32", "GROUP_SIZE": "constexpr", "GROUP": "constexpr", "STAGES": "constexpr"},
                constexprs={"GROUP_SIZE": 128, "GROUP": 8, "STAGES": stages})
            c = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": 4})
            s = sass(c)
            ops = collections.Counter(re.findall(r"^\s+/\*[0-9a-f]+\*/\s+(?:@!?U?P\w+\s+)?([A-Z0-9]+)", s, re.M))
            print((bn, bt, bk, stages), "warps", c.metadata.num_warps, "smem", c.metadata.shared, "HGMMA", ops["HGMMA"],
                  "LDS", ops["LDS"], "HADD2", ops["HADD2"], "HMUL2", ops["HMUL2"], "PRMT", ops["PRMT"],
                  "spills", bool(re.search(r"\bSTL\b", s)), flush=True)
        except Exception as exc:  # noqa: BLE001 - a probe prints what failed
            print((bn, bt, bk, stages), "FAILED", str(exc).strip().splitlines()[-1][:400], flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out")
    p.add_argument("--compile-only", action="store_true")
    p.add_argument("--m", type=int, nargs="+", default=[16, 64, 256, 1024])
    args = p.parse_args()
    if args.compile_only:
        compile_only()
        return
    sweep_7b_layer(args.m, {"rega_" + "x".join(map(str, t)): functools.partial(w4_rega, tile=t) for t in TILES}, args.out)

if __name__ == "__main__":
    main()
