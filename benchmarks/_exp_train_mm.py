"""Experiment (session 11): the INT8 matmuls of one llama2-1b training step at 16 x 2048 tokens, shape by shape.

Times, for each of the six (M, N, K) shapes a decoder layer's 21 matmuls take (all operands K-major, as training
passes them): bf16 cuBLAS, cuBLAS FP8 row-wise (`torch._scaled_mm`), lowbit's scaled INT8 kernel (autotuned, and
every tile of a sweep), and two candidates: a persistent TMA kernel (host tensor descriptors, the tile loop
flattened so the next tile's loads overlap this one's epilogue) and split-K (int32 atomics: exact, so the sum is
deterministic) for the grad-weight shapes, whose 1536 x 1536 output makes 72-144 tiles for 132 SMs.
Every candidate is checked against the autotuned kernel's output (integer sums: equal to the bit).
Caveat, found in call 2's numbers: the pointer kernel's rows ("int8_tuned", "ptr …") are launched through
`wrap_triton` and the autotuner eagerly, whose host time (~0.45-1.2 ms a call) exceeds most of these kernels: those
rows time the host, not the GPU. The TMA and split-K rows launch the kernels directly.

    python3 benchmarks/_exp_train_mm.py --out $OUT/train-mm.json
"""

from __future__ import annotations

import argparse
import json

import torch
import triton
import triton.language as tl
from triton.tools.tensor_descriptor import TensorDescriptor

from lowbit.ops import int8 as int8_ops

TOKENS = 16 * 2048
# (M, N, K): count in a layer
SHAPES = {
    (TOKENS, 1536, 1536): 8,  # q/k/v/o forward and grad-input
    (TOKENS, 6144, 1536): 3,  # gate/up forward, down grad-input
    (TOKENS, 1536, 6144): 3,  # down forward, gate/up grad-input
    (1536, 1536, TOKENS): 4,  # q/k/v/o grad-weight
    (6144, 1536, TOKENS): 2,  # gate/up grad-weight
    (1536, 6144, TOKENS): 1,  # down grad-weight
}


@triton.jit
def _tile(tile_id, num_pid_m, num_pid_n, GROUP_M: tl.constexpr):
    width = GROUP_M * num_pid_n
    group = tile_id // width
    first_m = group * GROUP_M
    size_m = tl.minimum(num_pid_m - first_m, GROUP_M)
    return first_m + (tile_id % size_m), (tile_id % width) // size_m


@triton.jit
def _mm_tma_kernel(a_desc, b_desc, c_desc, sa_ptr, sb_ptr, M, N, K,
                   BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
                   NUM_SMS: tl.constexpr, FLATTEN: tl.constexpr):
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(N, BLOCK_N)
    k_tiles = tl.cdiv(K, BLOCK_K)
    for tile_id in tl.range(tl.program_id(0), num_pid_m * num_pid_n, NUM_SMS, flatten=FLATTEN):
        pid_m, pid_n = _tile(tile_id, num_pid_m, num_pid_n, GROUP_M)
        om, on = pid_m * BLOCK_M, pid_n * BLOCK_N
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.int32)
        for ki in range(k_tiles):
            a = a_desc.load([om, ki * BLOCK_K])
            b = b_desc.load([on, ki * BLOCK_K])
            acc = tl.dot(a, b.T, acc, out_dtype=tl.int32)
        offs_m = om + tl.arange(0, BLOCK_M)
        offs_n = on + tl.arange(0, BLOCK_N)
        sa = tl.load(sa_ptr + offs_m, mask=offs_m < M, other=0.0)
        sb = tl.load(sb_ptr + offs_n, mask=offs_n < N, other=0.0)
        out = acc.to(tl.float32) * sa[:, None] * sb[None, :]
        c_desc.store([om, on], out.to(c_desc.dtype))


def mm_tma(a, bt, sa, sb, cfg, out_dtype=torch.bfloat16):
    """a [M, K] @ bt [N, K]ᵀ, both K-major int8."""
    m, k = a.shape
    n = bt.shape[0]
    c = torch.empty(m, n, device=a.device, dtype=out_dtype)
    bm, bn, bk = cfg["BLOCK_M"], cfg["BLOCK_N"], cfg["BLOCK_K"]
    a_d = TensorDescriptor(a, a.shape, a.stride(), [bm, bk])
    b_d = TensorDescriptor(bt, bt.shape, bt.stride(), [bn, bk])
    c_d = TensorDescriptor(c, c.shape, c.stride(), [bm, bn])
    sms = torch.cuda.get_device_properties(a.device).multi_processor_count
    tiles = triton.cdiv(m, bm) * triton.cdiv(n, bn)
    grid = (min(sms * cfg.get("CTAS", 1), tiles),)
    _mm_tma_kernel[grid](a_d, b_d, c_d, sa, sb, m, n, k, BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, GROUP_M=8,
                         NUM_SMS=grid[0], FLATTEN=cfg.get("FLATTEN", True), num_warps=cfg["num_warps"], num_stages=cfg["num_stages"])
    return c


@triton.jit
def _mm_split_kernel(a_ptr, b_ptr, acc_ptr, M, N, K, stride_am, stride_bn, K_SPLIT,
                     BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr):
    """int32 partial sums over one K-slice, added into acc by atomics (integers: order-free)."""
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(N, BLOCK_N)
    pid_m, pid_n = _tile(tl.program_id(0), num_pid_m, num_pid_n, GROUP_M)
    k0 = tl.program_id(1) * K_SPLIT
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = k0 + tl.arange(0, BLOCK_K)
    rows, cols = tl.minimum(offs_m, M - 1), tl.minimum(offs_n, N - 1)
    a_ptrs = a_ptr + rows[:, None] * stride_am + offs_k[None, :]
    b_ptrs = b_ptr + cols[None, :] * stride_bn + offs_k[:, None]
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.int32)
    for _ in range(0, K_SPLIT // BLOCK_K):
        acc += tl.dot(tl.load(a_ptrs), tl.load(b_ptrs), out_dtype=tl.int32)
        a_ptrs += BLOCK_K
        b_ptrs += BLOCK_K
    mask = (offs_m[:, None] < M) & (offs_n[None, :] < N)
    tl.atomic_add(acc_ptr + offs_m[:, None] * N + offs_n[None, :], acc, mask=mask, sem="relaxed")


def mm_split(a, bt, sa, sb, cfg, out_dtype=torch.bfloat16):
    m, k = a.shape
    n = bt.shape[0]
    s = cfg["SPLIT_K"]
    assert k % (s * cfg["BLOCK_K"]) == 0
    acc = torch.zeros(m, n, device=a.device, dtype=torch.int32)
    grid = (triton.cdiv(m, cfg["BLOCK_M"]) * triton.cdiv(n, cfg["BLOCK_N"]), s)
    _mm_split_kernel[grid](a, bt, acc, m, n, k, a.stride(0), bt.stride(0), k // s, BLOCK_M=cfg["BLOCK_M"],
                           BLOCK_N=cfg["BLOCK_N"], BLOCK_K=cfg["BLOCK_K"], GROUP_M=8, num_warps=cfg["num_warps"], num_stages=cfg["num_stages"])
    return (acc.float() * sa[:, None] * sb[None, :]).to(out_dtype)


def ms(fn) -> float:
    return triton.testing.do_bench(fn, warmup=25, rep=100)


POINTER_TILES = [(128, 256, 128, 8, 3), (256, 128, 128, 8, 3), (128, 128, 128, 8, 4), (128, 128, 128, 4, 4),
                 (64, 256, 128, 4, 4), (64, 128, 128, 4, 4), (128, 256, 64, 8, 4), (256, 128, 64, 8, 4), (128, 128, 64, 4, 6)]
TMA_TILES = [(128, 256, 128, 8, 3), (256, 128, 128, 8, 3), (128, 128, 128, 8, 4), (128, 256, 64, 8, 4),
             (256, 128, 64, 8, 4), (128, 128, 128, 4, 4), (128, 128, 64, 4, 6)]
SPLIT_TILES = [(128, 128, 128, 8, 4, 2), (128, 128, 128, 8, 4, 4), (128, 256, 128, 8, 3, 2), (128, 256, 128, 8, 3, 4),
               (256, 128, 128, 8, 3, 2), (128, 128, 128, 4, 4, 2), (128, 128, 128, 4, 4, 4)]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    args = p.parse_args()
    dev = torch.device("cuda")
    results = []
    for (m, n, k), count in SHAPES.items():
        torch.manual_seed(0)
        a = torch.randint(-127, 128, (m, k), device=dev, dtype=torch.int8)
        bt = torch.randint(-127, 128, (n, k), device=dev, dtype=torch.int8)
        sa = torch.rand(m, device=dev) * 1e-3 + 1e-4
        sb = torch.rand(n, device=dev) * 1e-3 + 1e-4
        ref = int8_ops.scaled_int8_mm_triton(a, bt.t(), sa, sb)
        row = {"m": m, "n": n, "k": k, "count": count, "flop": 2 * m * n * k}
        ab, bb = a.bfloat16(), bt.bfloat16()
        row["bf16"] = ms(lambda: ab @ bb.t())
        a8, b8 = a.to(torch.float8_e4m3fn), bt.to(torch.float8_e4m3fn)
        sa2, sb2 = sa[:, None].contiguous(), sb[None, :].contiguous()
        row["fp8"] = ms(lambda: torch._scaled_mm(a8, b8.t(), scale_a=sa2, scale_b=sb2, out_dtype=torch.bfloat16))
        row["fp8_fast"] = ms(lambda: torch._scaled_mm(a8, b8.t(), scale_a=sa2, scale_b=sb2, out_dtype=torch.bfloat16, use_fast_accum=True))
        row["int8_tuned"] = ms(lambda: int8_ops.scaled_int8_mm_triton(a, bt.t(), sa, sb))
        row["tuned_config"] = str(int8_ops._scaled_mm_tuned.cache)[-200:]
        int8_ops._scaled_mm_tuned.cache.clear()

        def sweep(name, fn, tiles, keys):
            for t in tiles:
                cfg = dict(zip(keys, t))
                label = f"{name} " + "x".join(str(v) for v in t)
                try:
                    out = fn(a, bt, sa, sb, cfg)
                    err = (out.float() - ref.float()).abs().max().item()
                    row[label] = ms(lambda: fn(a, bt, sa, sb, cfg))
                    row[label + " maxdiff"] = err
                except Exception as e:  # noqa: BLE001 (a tile that does not compile or fit: recorded, not fatal)
                    row[label] = f"{type(e).__name__}: {str(e)[:120]}"

        def pointer(a, bt, sa, sb, cfg):
            c = dict(cfg, GROUP_M=8)
            return int8_ops.scaled_int8_mm_triton(a, bt.t(), sa, sb, config=c)

        sweep("ptr", pointer, POINTER_TILES, ["BLOCK_M", "BLOCK_N", "BLOCK_K", "num_warps", "num_stages"])
        sweep("tma", mm_tma, TMA_TILES, ["BLOCK_M", "BLOCK_N", "BLOCK_K", "num_warps", "num_stages"])
        if k == TOKENS:
            sweep("split", mm_split, SPLIT_TILES, ["BLOCK_M", "BLOCK_N", "BLOCK_K", "num_warps", "num_stages", "SPLIT_K"])
        results.append(row)
        best = min((v, kk) for kk, v in row.items() if isinstance(v, float) and kk.split()[0] in ("ptr", "tma", "split", "int8_tuned") and "maxdiff" not in kk)
        tflops = lambda t: row["flop"] / t / 1e9  # noqa: E731
        print(f"{m}x{n}x{k} x{count}: bf16 {tflops(row['bf16']):.0f} fp8 {tflops(row['fp8']):.0f} fp8fast {tflops(row['fp8_fast']):.0f} "
              f"int8 tuned {tflops(row['int8_tuned']):.0f}; best {best[1]} {tflops(best[0]):.0f} TFLOP/s", flush=True)
        del a, bt, ab, bb, a8, b8
    layer = lambda key: sum(r["count"] * r[key] for r in results)  # noqa: E731
    summary = {k: 24 * layer(k) for k in ("bf16", "fp8", "fp8_fast", "int8_tuned")}
    summary["int8_best"] = 24 * sum(r["count"] * min(v for kk, v in r.items() if isinstance(v, float) and kk.split()[0] in ("ptr", "tma", "split", "int8_tuned") and "maxdiff" not in kk) for r in results)
    print("ms a step (24 layers):", {k: round(v, 1) for k, v in summary.items()})
    with open(args.out, "w") as f:
        json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__, "triton": triton.__version__,
                   "rows": results, "ms_a_step": summary}, f, indent=1)


if __name__ == "__main__":
    main()
