"""Session 19 (one-off): why `outliers.find` takes 6.5 µs on 256 × 4096 bf16 (call 4), where reading 2 MB takes ~1.
A copy of its kernel with the last program's work cut in stages: MODE 0 the peaks and mask only, 1 plus the counter's
atomic (SEM: its ordering), 2 the whole kernel; over tiles (rows a load × columns a program, warps). µs from a CUDA
graph of the call, x in the L2 as the layer's input would be.

    python benchmarks/_exp_find.py out.json
"""
import json
import sys

import torch
import triton
import triton.language as tl

from lowbit.ops import outliers
from lowbit.ops.tiles import cdiv, next_power_of_2, tile_counters


@triton.jit
def _max_nan(a, b):
    return tl.maximum(a, b, propagate_nan=tl.PropagateNan.ALL)


@triton.jit
def _kernel(x_ptr, peak_ptr, skip_ptr, cols_ptr, count_ptr, ticket_ptr, M, K, stride_xm, threshold,
            MODE: tl.constexpr, SEM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr, SCAN: tl.constexpr):
    offs_k = tl.program_id(0) * BLOCK_K + tl.arange(0, BLOCK_K)
    k_ok = offs_k < K
    acc = tl.zeros((BLOCK_M, BLOCK_K), dtype=tl.float32)
    for m0 in range(0, M, BLOCK_M):
        rows = m0 + tl.arange(0, BLOCK_M)
        v = tl.load(x_ptr + rows[:, None] * stride_xm + offs_k[None, :], mask=(rows < M)[:, None] & k_ok[None, :], other=0.0)
        acc = _max_nan(acc, tl.abs(v.to(tl.float32)))
    peak = tl.reduce(acc, 0, _max_nan)
    tl.store(skip_ptr + offs_k, peak > threshold, mask=k_ok)
    tl.store(peak_ptr + offs_k, peak, mask=k_ok)
    if MODE >= 1:
        tl.debug_barrier()
        done = tl.atomic_add(ticket_ptr, 1, sem=SEM, scope="gpu")
        if done == tl.num_programs(0) - 1:
            if MODE == 2:
                base = tl.zeros((), dtype=tl.int32)
                for k0 in range(0, K, SCAN):
                    offs = k0 + tl.arange(0, SCAN)
                    ok = offs < K
                    over = (tl.load(peak_ptr + offs, mask=ok, other=0.0, cache_modifier=".cg") > threshold) & ok
                    o = over.to(tl.int32)
                    tl.store(cols_ptr + base + tl.cumsum(o, 0) - o, offs, mask=over)
                    base += tl.sum(o, 0)
                tl.store(count_ptr, base)
            tl.atomic_xchg(ticket_ptr, 0, sem="relaxed", scope="gpu")


def run(x, mode, sem, bm, bk, warps, scan=4096):
    m, k = x.shape
    peak = torch.empty(k, device="cuda")
    skip = torch.empty(k, device="cuda", dtype=torch.bool)
    cols = torch.empty(k, device="cuda", dtype=torch.int32)
    count = torch.empty(1, device="cuda", dtype=torch.int32)
    ticket = tile_counters(x.device, 1)

    def fn():
        _kernel[(cdiv(k, bk),)](x, peak, skip, cols, count, ticket, m, k, x.stride(0), 6.0, MODE=mode, SEM=sem,
                                BLOCK_M=min(bm, next_power_of_2(m)), BLOCK_K=bk, SCAN=min(scan, next_power_of_2(k)), num_warps=warps)
    return fn


rows = []
for m, k in [(256, 4096), (256, 11008), (4096, 4096)]:
    x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16) * 2
    lib = triton.testing.do_bench_cudagraph(lambda: outliers.find(x, 6.0), rep=50)
    norm = triton.testing.do_bench_cudagraph(lambda: torch.linalg.vector_norm(x, float("inf"), dim=0), rep=50)
    row = dict(m=m, k=k, library_us=round(lib * 1e3, 2), vector_norm_us=round(norm * 1e3, 2))
    for bm, bk, warps in [(256, 32, 8), (64, 32, 8), (128, 64, 8), (256, 16, 4), (64, 16, 4), (32, 128, 4), (512, 32, 8)]:
        for mode, sem in [(0, "relaxed"), (1, "relaxed"), (1, "acq_rel"), (2, "acq_rel")]:
            try:
                us = triton.testing.do_bench_cudagraph(run(x, mode, sem, bm, bk, warps), rep=50) * 1e3
                row[f"{bm}x{bk}w{warps} mode{mode} {sem}"] = round(us, 2)
            except Exception as e:
                row[f"{bm}x{bk}w{warps} mode{mode} {sem}"] = f"{type(e).__name__}: {str(e)[:60]}"
    print(json.dumps(row), flush=True)
    rows.append(row)
json.dump(rows, open(sys.argv[1], "w"), indent=1)
