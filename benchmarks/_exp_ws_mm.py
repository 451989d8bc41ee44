"""Experiment (session 12): warp-specialized INT8 matmuls on sm_90. Triton 3.6's `tl.range(warp_specialize=True)`
does split a loop into a TMA producer warp group and two MMA consumer groups on Hopper (its docstring says Blackwell
only; compiled for sm_90 on the CPU: 12 warps, `USETMAXREG`, 168 registers), where it takes 4 warps and the output
goes out through `tl.store` (a descriptor store failed in the pass). Times, shape by shape (K-major operands, as
training passes them): the persistent TMA kernel now, two warp-specialized kernels (persistent with the tile loop
specialized; one tile a program with the K loop specialized) on a few tiles, cuBLAS FP8 row-wise and bf16. Each
candidate is checked against the TMA kernel (the same integer sums and epilogue: equal to the bit).

    python3 benchmarks/_exp_ws_mm.py --out $OUT/ws-mm.json
"""

from __future__ import annotations

import argparse
import json

import torch
import triton
import triton.language as tl
import triton.testing
from triton.tools.tensor_descriptor import TensorDescriptor

from lowbit.ops import int8 as int8_ops
from lowbit.ops.tiles import grouped_tile
from sweep import write

TOKENS = 16 * 2048
SHAPES = {  # (M, N, K): count a llama2-1b layer (training), or the 7B linears at 4096 tokens (inference)
    (TOKENS, 1536, 1536): 8, (TOKENS, 6144, 1536): 3, (TOKENS, 1536, 6144): 3,
    (1536, 1536, TOKENS): 4, (6144, 1536, TOKENS): 2, (1536, 6144, TOKENS): 1,
    (4096, 4096, 4096): 0, (4096, 11008, 4096): 0, (4096, 4096, 11008): 0,
}
TILES = [(128, 256, 128, 3), (128, 256, 64, 4), (128, 256, 64, 6), (128, 128, 128, 4), (128, 128, 128, 5), (256, 128, 128, 3), (256, 128, 64, 4)]


@triton.jit
def _epilogue(acc, om, on, sa_ptr, sb_ptr, c_ptr, M, N, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    offs_m = om + tl.arange(0, BLOCK_M)
    offs_n = on + tl.arange(0, BLOCK_N)
    sa = tl.load(sa_ptr + offs_m, mask=offs_m < M, other=0.0)
    sb = tl.load(sb_ptr + offs_n, mask=offs_n < N, other=0.0)
    out = acc.to(tl.float32) * sa[:, None] * sb[None, :]
    tl.store(c_ptr + offs_m[:, None] * N + offs_n[None, :], out.to(c_ptr.dtype.element_ty), mask=(offs_m < M)[:, None] & (offs_n < N)[None, :])


@triton.jit
def _ws_persistent(a_desc, b_desc, c_ptr, sa_ptr, sb_ptr, M, N, K, NUM_PROGRAMS,
                   BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr):
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(N, BLOCK_N)
    for tile in tl.range(tl.program_id(0), num_pid_m * num_pid_n, NUM_PROGRAMS, warp_specialize=True):
        pid_m, pid_n = grouped_tile(tile, M, N, BLOCK_M, BLOCK_N, GROUP_M)
        om, on = pid_m * BLOCK_M, pid_n * BLOCK_N
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.int32)
        for k in range(0, tl.cdiv(K, BLOCK_K)):
            acc = tl.dot(a_desc.load([om, k * BLOCK_K]), b_desc.load([on, k * BLOCK_K]).T, acc, out_dtype=tl.int32)
        _epilogue(acc, om, on, sa_ptr, sb_ptr, c_ptr, M, N, BLOCK_M, BLOCK_N)


@triton.jit
def _ws_inner(a_desc, b_desc, c_ptr, sa_ptr, sb_ptr, M, N, K,
              BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr):
    pid_m, pid_n = grouped_tile(tl.program_id(0), M, N, BLOCK_M, BLOCK_N, GROUP_M)
    om, on = pid_m * BLOCK_M, pid_n * BLOCK_N
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.int32)
    for k in tl.range(0, tl.cdiv(K, BLOCK_K), warp_specialize=True):
        acc = tl.dot(a_desc.load([om, k * BLOCK_K]), b_desc.load([on, k * BLOCK_K]).T, acc, out_dtype=tl.int32)
    _epilogue(acc, om, on, sa_ptr, sb_ptr, c_ptr, M, N, BLOCK_M, BLOCK_N)


def ws_mm(kind, a, bt, sa, sb, tile, programs=None):
    bm, bn, bk, st = tile
    m, k = a.shape
    n = bt.shape[0]
    c = torch.empty(m, n, device=a.device, dtype=torch.bfloat16)
    a_d, b_d = TensorDescriptor.from_tensor(a, [bm, bk]), TensorDescriptor.from_tensor(bt, [bn, bk])
    tiles = triton.cdiv(m, bm) * triton.cdiv(n, bn)
    if kind == "persistent":
        p = min(programs or torch.cuda.get_device_properties(a.device).multi_processor_count, tiles)
        _ws_persistent[(p,)](a_d, b_d, c, sa, sb, m, n, k, p, BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, GROUP_M=8, num_warps=4, num_stages=st)
    else:
        _ws_inner[(tiles,)](a_d, b_d, c, sa, sb, m, n, k, BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, GROUP_M=8, num_warps=4, num_stages=st)
    return c


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--kinds", nargs="+", default=["persistent", "inner"])
    p.add_argument("--tiles", type=int, nargs="+", default=None, help="indices into TILES")
    p.add_argument("--shapes", type=int, nargs="+", default=None, help="indices into SHAPES")
    args = p.parse_args()
    tiles = [TILES[i] for i in args.tiles] if args.tiles is not None else TILES
    shapes = list(SHAPES.items())
    shapes = [shapes[i] for i in args.shapes] if args.shapes is not None else shapes
    rows = []
    gen = torch.Generator(device="cuda").manual_seed(0)
    for (m, n, k), count in shapes:
        a = torch.randint(-127, 128, (m, k), device="cuda", dtype=torch.int8, generator=gen)
        bt = torch.randint(-127, 128, (n, k), device="cuda", dtype=torch.int8, generator=gen)
        sa = torch.rand(m, device="cuda", generator=gen) * 1e-3
        sb = torch.rand(n, device="cuda", generator=gen) * 1e-3
        flops = 2 * m * n * k
        ref = int8_ops.scaled_int8_mm_tma(a, bt, sa, sb, None, torch.bfloat16)
        row = dict(m=m, n=n, k=k, count=count)

        def tf(fn):
            return round(flops / (triton.testing.do_bench(fn, rep=60) * 1e-3) / 1e12, 1)

        row["tma_now"] = tf(lambda: int8_ops.scaled_int8_mm_tma(a, bt, sa, sb, None, torch.bfloat16))
        fa, fb = a.to(torch.float8_e4m3fn), bt.to(torch.float8_e4m3fn)
        sa2, sb2 = sa.reshape(-1, 1), sb.reshape(1, -1)
        row["fp8"] = tf(lambda: torch._scaled_mm(fa, fb.t(), sa2, sb2, out_dtype=torch.bfloat16))
        row["fp8_fast"] = tf(lambda: torch._scaled_mm(fa, fb.t(), sa2, sb2, out_dtype=torch.bfloat16, use_fast_accum=True))
        ha, hb = a.to(torch.bfloat16), bt.to(torch.bfloat16)
        row["bf16"] = tf(lambda: ha @ hb.t())
        del fa, fb, ha, hb
        for kind in args.kinds:
            for tile in tiles:
                name = f"ws_{kind}_{tile[0]}x{tile[1]}x{tile[2]}s{tile[3]}"
                try:
                    out = ws_mm(kind, a, bt, sa, sb, tile)
                    torch.cuda.synchronize()
                    same = torch.equal(out, ref)
                    row[name] = [tf(lambda: ws_mm(kind, a, bt, sa, sb, tile)), "equal" if same else f"DIFFERS max {(out.float() - ref.float()).abs().max().item():.3g}"]
                except Exception as exc:  # noqa: BLE001 - a sweep records what failed
                    row[name] = f"failed: {type(exc).__name__}: {str(exc)[:160]}"
                print(name, row[name], flush=True)
        print(json.dumps(row), flush=True)
        rows.append(row)
        write(args.out, rows)


if __name__ == "__main__":
    main()
