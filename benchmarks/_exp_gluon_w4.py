"""Experiment (session 13): a warp-specialized W4A16 GEMM in Gluon for the token counts where lowbit's weight-only
layers fall below bf16 (64-4096 tokens: dequantizing the whole weight, then cuBLAS, costs the weight's write and
read in bf16 on top of cuBLAS's own time).

    out[m, n] = Σ_k x[m, k] · (c[n, k] − z[n, g]) · s[n, g]    (4-bit codes two a byte along K, groups g of 128)

Three partitions share a ring of STAGES slots, each holding an x tile [BM, BK] and a weight tile in both forms:
- a load warp copies x's tile and the packed codes' tile [BN, BK/2] by TMA ("ready", completed by byte count);
- a dequantizing warpgroup turns the codes into bf16 (c − z)·s in the slot's weight tile ("dequantized");
- the MMA warpgroup multiplies x by the weight tile from shared memory, as the INT8 kernel does, and frees the
  slot ("empty") once its MMA is retired; then the epilogue (bias, a TMA store).
So dequantizing runs beside the tensor cores, where a single-partition kernel would wait for it.

    python3 benchmarks/_exp_gluon_w4.py --compile-only           # sm_90 on the CPU
    python3 benchmarks/_exp_gluon_w4.py --out $OUT/gluon-w4.json  # on a GPU: error, and µs from CUDA graphs
"""

from __future__ import annotations

import argparse
import functools
import json

import torch
import triton
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import (
    fence_async_shared, mbarrier, tma, warpgroup_mma, warpgroup_mma_wait)

from lowbit.ops.int8_hopper import _tile_origin


def _pairs_asm(magic: str, sub: str, mul: str) -> str:
    """`weight_only._nibble_pairs_asm` (PRMT a byte and the word shifted by 4 into two halves, LOP3 a nibble into
    each half's mantissa under the exponent of 128 (bf16) or 1024 (fp16), a packed subtraction of 128 + z), then a
    packed multiply by the scale pair: four bytes in, four pairs (c − z)·s out."""
    pairs = "\n".join(f"prmt.b32 t{i}, $4, w4, 0x{4 + i}{4 + i}{i}{i};" for i in range(4))
    masks = "\n".join(f"lop3.b32 t{i}, t{i}, 0x000F000F, {magic}, 0xEA;" for i in range(4))
    subs = "\n".join(f"{sub} t{i}, t{i}, ${5 + i};\n{mul} ${i}, t{i}, ${9 + i};" for i in range(4))
    return f"{{\n.reg .b32 w4, t0, t1, t2, t3;\nshr.b32 w4, $4, 4;\n{pairs}\n{masks}\n{subs}\n}}"


_ASM_BF16 = gl.constexpr(_pairs_asm("0x43004300", "sub.rn.bf16x2", "mul.rn.bf16x2"))
_ASM_FP16 = gl.constexpr(_pairs_asm("0x64006400", "sub.rn.f16x2", "mul.rn.f16x2"))
_CONSTRAINTS = gl.constexpr("=r,=r,=r,=r,r,r,r,r,r,r,r,r,r")  # 4 pairs out; 4 bytes (one register), 4 zz, 4 ss in


@gluon.jit
def dequantize_codes(c, sc, zp, DTYPE: gl.constexpr, BN: gl.constexpr, BK: gl.constexpr):
    """Packed codes c [BN, BK/2] (uint8, low nibble first) → (c − z)·s [BN, BK] in DTYPE (bf16 or fp16), in the layout
    c's join along K gives: `_pairs_asm`'s PTX four bytes at a time. sc, zp: a row's scale (fp32) and zero point."""
    FP16: gl.constexpr = DTYPE == gl.float16
    zz = (zp | (0x6400 if FP16 else 0x4300)) * 65537
    ss = (sc.to(DTYPE).to(gl.int16, bitcast=True).to(gl.int32) & 0xFFFF) * 65537
    if FP16:
        pair = gl.inline_asm_elementwise(_ASM_FP16, _CONSTRAINTS, [c, zz[:, None], ss[:, None]], gl.int32, True, 4)
    else:
        pair = gl.inline_asm_elementwise(_ASM_BF16, _CONSTRAINTS, [c, zz[:, None], ss[:, None]], gl.int32, True, 4)
    lo = pair.to(gl.int16).to(DTYPE, bitcast=True)
    hi = (pair >> 16).to(gl.int16).to(DTYPE, bitcast=True)
    return gl.reshape(gl.join(lo, hi), [BN, BK])


@gluon.jit
def _loads(x_desc, q_desc, x_bufs, q_bufs, ready, empty, M, N, K, PROGRAMS, GROUP: gl.constexpr, STAGES: gl.constexpr):
    BM: gl.constexpr = x_desc.block_type.shape[0]
    BK: gl.constexpr = x_desc.block_type.shape[1]
    BN: gl.constexpr = q_desc.block_type.shape[0]
    g = 0
    for tile in range(gl.program_id(0), gl.cdiv(M, BM) * gl.cdiv(N, BN), PROGRAMS):
        om, on = _tile_origin(tile, M, N, BM, BN, GROUP)
        for i in range(gl.cdiv(K, BK)):
            s = g % STAGES
            mbarrier.wait(empty.index(s), ((g // STAGES) & 1) ^ 1)
            mbarrier.expect(ready.index(s), x_desc.block_type.nbytes + q_desc.block_type.nbytes)
            tma.async_copy_global_to_shared(x_desc, [om, i * BK], ready.index(s), x_bufs.index(s))
            tma.async_copy_global_to_shared(q_desc, [on, i * (BK // 2)], ready.index(s), q_bufs.index(s))
            g += 1


@gluon.jit
def _dequantize(q_bufs, w_bufs, ready, empty, dequantized, scale_ptr, zero_ptr, M, N, K, PROGRAMS,
                BM: gl.constexpr, GROUP_SIZE: gl.constexpr, HAS_ZERO: gl.constexpr, GROUP: gl.constexpr,
                STAGES: gl.constexpr, VEC: gl.constexpr):
    BN: gl.constexpr = q_bufs.type.shape[1]
    BK: gl.constexpr = w_bufs.type.shape[2]
    # a thread takes VEC bytes (2 VEC codes) of a row at a time
    TPW_K: gl.constexpr = (BK // 2) // VEC
    layout: gl.constexpr = gl.BlockedLayout([1, VEC], [32 // TPW_K, TPW_K], [4, 1], [1, 0])
    groups = K // GROUP_SIZE
    n_k = gl.cdiv(K, BK)
    g = 0
    for tile in range(gl.program_id(0), gl.cdiv(M, BM) * gl.cdiv(N, BN), PROGRAMS):
        _, on = _tile_origin(tile, M, N, BM, BN, GROUP)
        offs_n = on + gl.arange(0, BN, layout=gl.SliceLayout(1, layout))
        n_mask = offs_n < N
        # a step's scales and zero points are loaded one step ahead (call 9's ncu: 40 % of the stalls waited on them)
        sc_next = gl.load(scale_ptr + offs_n * groups, mask=n_mask, other=0.0)
        if HAS_ZERO:
            zp_next = gl.load(zero_ptr + offs_n * groups, mask=n_mask, other=0).to(gl.int32)
        else:
            zp_next = gl.full([BN], 8, gl.int32, layout=gl.SliceLayout(1, layout))
        for i in range(n_k):
            sc = sc_next
            zp = zp_next
            nxt = ((i + 1) * BK) // GROUP_SIZE  # BK divides the group: one scale a row a step
            sc_next = gl.load(scale_ptr + offs_n * groups + nxt, mask=n_mask & (nxt < groups), other=0.0)
            if HAS_ZERO:
                zp_next = gl.load(zero_ptr + offs_n * groups + nxt, mask=n_mask & (nxt < groups), other=0).to(gl.int32)
            s = g % STAGES
            mbarrier.wait(ready.index(s), (g // STAGES) & 1)
            mbarrier.wait(empty.index(s), ((g // STAGES) & 1) ^ 1)  # the MMA has let go of this slot's weight tile
            # weight_only._nibble_pairs' PTX, then a packed multiply by the scale in x's dtype
            w = dequantize_codes(q_bufs.index(s).load(layout), sc, zp, w_bufs.dtype, BN, BK)
            w_bufs.index(s).store(w)
            fence_async_shared()
            gl.thread_barrier()  # every warp's part of the tile is written before the MMA hears of it
            mbarrier.arrive(dequantized.index(s))
            g += 1


@gluon.jit
def _mma(x_bufs, w_bufs, dequantized, empty, c_desc, c_buf, bias_ptr, M, N, K, PROGRAMS,
         HAS_BIAS: gl.constexpr, GROUP: gl.constexpr, STAGES: gl.constexpr):
    BM: gl.constexpr = c_desc.block_type.shape[0]
    BN: gl.constexpr = c_desc.block_type.shape[1]
    BK: gl.constexpr = x_bufs.type.shape[2]
    layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1], instr_shape=[16, BN, 16])
    n_k = gl.cdiv(K, BK)
    g = 0
    for tile in range(gl.program_id(0), gl.cdiv(M, BM) * gl.cdiv(N, BN), PROGRAMS):
        om, on = _tile_origin(tile, M, N, BM, BN, GROUP)
        acc = gl.zeros((BM, BN), dtype=gl.float32, layout=layout)
        for i in range(n_k):
            s = g % STAGES
            mbarrier.wait(dequantized.index(s), (g // STAGES) & 1)
            acc = warpgroup_mma(x_bufs.index(s), w_bufs.index(s).permute((1, 0)), acc, is_async=True)
            acc = warpgroup_mma_wait(1, deps=(acc,))
            mbarrier.arrive(empty.index((g + STAGES - 1) % STAGES), pred=i > 0)
            g += 1
        acc = warpgroup_mma_wait(0, deps=(acc,))
        mbarrier.arrive(empty.index((g + STAGES - 1) % STAGES))
        if HAS_BIAS:
            offs_n = on + gl.arange(0, BN, layout=gl.SliceLayout(0, layout))
            acc += gl.load(bias_ptr + offs_n, mask=offs_n < N, other=0.0)[None, :]
        tma.store_wait(0)
        c_buf.store(acc.to(c_desc.dtype))
        fence_async_shared()
        tma.async_copy_shared_to_global(c_desc, [om, on], c_buf)
    tma.store_wait(0)


@gluon.jit
def w4_kernel(x_desc, q_desc, c_desc, scale_ptr, zero_ptr, bias_ptr, M, N, K, PROGRAMS,
              GROUP_SIZE: gl.constexpr, HAS_ZERO: gl.constexpr, HAS_BIAS: gl.constexpr, GROUP: gl.constexpr,
              STAGES: gl.constexpr, DQ_REGS: gl.constexpr, VEC: gl.constexpr):
    BM: gl.constexpr = x_desc.block_type.shape[0]
    BK: gl.constexpr = x_desc.block_type.shape[1]
    BN: gl.constexpr = q_desc.block_type.shape[0]
    x_bufs = gl.allocate_shared_memory(x_desc.dtype, [STAGES, BM, BK], x_desc.layout)
    q_bufs = gl.allocate_shared_memory(gl.uint8, [STAGES, BN, BK // 2], q_desc.layout)
    w_layout: gl.constexpr = gl.NVMMASharedLayout.get_default_for([BN, BK], gl.bfloat16)
    w_bufs = gl.allocate_shared_memory(x_desc.dtype, [STAGES, BN, BK], w_layout)
    c_buf = gl.allocate_shared_memory(c_desc.dtype, [BM, BN], c_desc.layout)
    ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    dequantized = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    for s in gl.static_range(STAGES):
        mbarrier.init(ready.index(s), count=1)
        mbarrier.init(empty.index(s), count=1)
        mbarrier.init(dequantized.index(s), count=1)
    gl.warp_specialize([
        (_mma, (x_bufs, w_bufs, dequantized, empty, c_desc, c_buf, bias_ptr, M, N, K, PROGRAMS, HAS_BIAS, GROUP, STAGES)),
        (_dequantize, (q_bufs, w_bufs, ready, empty, dequantized, scale_ptr, zero_ptr, M, N, K, PROGRAMS, BM,
                       GROUP_SIZE, HAS_ZERO, GROUP, STAGES, VEC)),
        (_loads, (x_desc, q_desc, x_bufs, q_bufs, ready, empty, M, N, K, PROGRAMS, GROUP, STAGES)),
    ], [4, 1], [DQ_REGS, 40])


def _gl_dtype(dtype):
    return {torch.bfloat16: gl.bfloat16, torch.float16: gl.float16, torch.uint8: gl.uint8}[dtype]


def _desc(t, block):
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

    return TensorDescriptor.from_tensor(t, block, gl.NVMMASharedLayout.get_default_for(block, _gl_dtype(t.dtype)))


def w4_gluon(x, qweight, scale, zero, group_size=128, bias=None, tile=(128, 128, 128, 4), regs=160, group=8, vec=8):
    bm, bn, bk, stages = tile
    m, k = x.shape
    n = qweight.shape[0]
    out = torch.empty(m, n, device=x.device, dtype=x.dtype)
    programs = min(torch.cuda.get_device_properties(x.device).multi_processor_count, triton.cdiv(m, bm) * triton.cdiv(n, bn))
    w4_kernel[(programs,)](
        _desc(x, [bm, bk]), _desc(qweight, [bn, bk // 2]), _desc(out, [bm, bn]), scale,
        zero if zero is not None else scale, bias if bias is not None else scale, m, n, k, programs,
        GROUP_SIZE=group_size, HAS_ZERO=zero is not None, HAS_BIAS=bias is not None, GROUP=group, STAGES=stages,
        DQ_REGS=regs, VEC=vec, num_warps=4)
    return out


def compile_only():
    import re
    import sys
    from pathlib import Path

    from triton.backends.compiler import GPUTarget
    from triton.experimental.gluon._runtime import GluonASTSource

    sys.path.insert(0, str(Path(__file__).parent))
    from sm90_asm import sass

    def desc(rows, cols, ty, dtype):
        return f"tensordesc<{ty}[{rows},{cols}],{gl.NVMMASharedLayout.get_default_for([rows, cols], dtype)!r}>"

    for bm, bn, bk, stages, vec in [(128, 64, 128, 4, 4), (128, 64, 128, 4, 8), (256, 64, 64, 4, 8), (128, 128, 64, 5, 4)]:
        try:
            src = GluonASTSource(fn=w4_kernel, signature={
                "x_desc": desc(bm, bk, "bf16", gl.bfloat16), "q_desc": desc(bn, bk // 2, "u8", gl.uint8),
                "c_desc": desc(bm, bn, "bf16", gl.bfloat16), "scale_ptr": "*fp32", "zero_ptr": "*u8", "bias_ptr": "*fp32",
                "M": "i32", "N": "i32", "K": "i32", "PROGRAMS": "i32", "GROUP_SIZE": "constexpr", "HAS_ZERO": "constexpr",
                "HAS_BIAS": "constexpr", "GROUP": "constexpr", "STAGES": "constexpr", "DQ_REGS": "constexpr",
                "VEC": "constexpr"},
                constexprs={"GROUP_SIZE": 128, "HAS_ZERO": True, "HAS_BIAS": False, "GROUP": 8, "STAGES": stages, "DQ_REGS": 160,
                            "VEC": vec})
            c = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": 4})
            s = sass(c)
            print((bm, bn, bk, stages, vec), "warps", c.metadata.num_warps, "smem", c.metadata.shared, "HGMMA",
                  len(re.findall(r"\bHGMMA\.", s)), "spills", bool(re.search(r"\bSTL\b", s)), flush=True)
        except Exception as exc:  # noqa: BLE001 - a probe prints what failed
            print((bm, bn, bk, stages, vec), "FAILED", str(exc).strip().splitlines()[-1][:400], flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out")
    p.add_argument("--compile-only", action="store_true")
    p.add_argument("--tiles", nargs="+", default=["128x64x128x4x4", "128x64x128x4x8", "256x64x64x4x8", "128x128x64x5x4"], help="BM x BN x BK x STAGES x VEC")
    p.add_argument("--m", type=int, nargs="+", default=[64, 128, 256, 512, 1024, 4096])
    p.add_argument("--ncu", action="store_true", help="three calls of the first tile at the first M on 4096 -> 11008, for ncu")
    args = p.parse_args()
    if args.compile_only:
        compile_only()
        return
    if args.ncu:
        from lowbit.formats.packing import pack

        bm, bn, bk, st, vec = (int(v) for v in args.tiles[0].split("x"))
        q = pack(torch.randint(0, 16, (11008, 4096), device="cuda", dtype=torch.uint8), 4)
        s = torch.rand(11008, 32, device="cuda") * 0.01
        z = torch.randint(0, 16, s.shape, device="cuda", dtype=torch.uint8)
        x = torch.randn(args.m[0], 4096, device="cuda", dtype=torch.bfloat16)
        for _ in range(3):
            w4_gluon(x, q, s, z, tile=(bm, bn, bk, st), vec=vec)
        torch.cuda.synchronize()
        return
    variants = {}
    for tile in args.tiles:
        bm, bn, bk, st, vec = (int(v) for v in tile.split("x"))
        variants[f"gluon_{tile}"] = functools.partial(w4_gluon, tile=(bm, bn, bk, st), vec=vec)
    sweep_7b_layer(args.m, variants, args.out)


def sweep_7b_layer(ms: list[int], variants: dict, out: str | None) -> None:
    """The seven linears of a Llama-2-7B layer with random int4 g128 weights (zero points): per token count, µs from
    CUDA graphs of bf16, of lowbit's dispatch and of each variant fn(x, qweight, scale, zero), and each variant's
    largest relative error against x @ W in float32."""
    from _exp_launch_cost import graph_us
    from lowbit.formats.packing import pack
    from lowbit.ops import weight_only as wo
    from sweep import write

    gen = torch.Generator(device="cuda").manual_seed(0)
    weights = []
    for k, n, count in [(4096, 4096, 4), (4096, 11008, 2), (11008, 4096, 1)]:  # K, N, linears of a 7B layer
        q = pack(torch.randint(0, 16, (n, k), generator=gen, device="cuda", dtype=torch.uint8), 4)
        s = torch.rand(n, k // 128, generator=gen, device="cuda") * 0.01 + 0.001
        z = torch.randint(0, 16, s.shape, generator=gen, device="cuda", dtype=torch.uint8)
        weights.append((k, n, count, q, s, z, wo.dequantize_reference(q, s, z, 4, 128, k, dtype=torch.bfloat16)))
    rows = []
    for m in ms:
        row = dict(m=m, bf16=0.0, lowbit_now=0.0)
        for k, n, count, q, s, z, w in weights:
            x = torch.randn(m, k, generator=gen, device="cuda", dtype=torch.bfloat16)
            ref = x.float() @ w.float().t()
            row["bf16"] += count * graph_us(lambda: torch.nn.functional.linear(x, w))
            row["lowbit_now"] += count * graph_us(lambda: wo._weight_only_matmul(x, q, s, z, None, 4, 128, None, None))
            for key, fn in variants.items():
                try:
                    got = fn(x, q, s, z)
                    torch.cuda.synchronize()
                    err = ((got.float() - ref).norm() / ref.norm()).item()
                    row[f"{key}_err"] = max(row.get(f"{key}_err", 0.0), round(err, 5))
                    row[key] = row.get(key, 0.0) + count * graph_us(lambda: fn(x, q, s, z))
                except Exception as exc:  # noqa: BLE001 - a sweep records what failed
                    row[key] = f"FAILED {str(exc).strip().splitlines()[-1][:200]}"
        for key in [key for key in row if isinstance(row[key], float) and not key.endswith("_err")]:
            row[key] = round(row[key], 1)
            if key != "bf16":
                row[f"x_bf16_{key}"] = round(row["bf16"] / row[key], 3)
        print(json.dumps(row), flush=True)
        rows.append(row)
        if out:
            write(out, rows)

if __name__ == "__main__":
    main()
