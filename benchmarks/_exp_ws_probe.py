"""Experiment (session 12, call 4): where call 45-46's warp-specialized INT8 matmuls stopped. One kernel of
`_exp_ws_mm.py` (or its bf16 twin) on one small shape, printing a line after the launch returns (compiled) and
after the GPU finishes; a hung kernel shows as the first line without the second.

    python3 benchmarks/_exp_ws_probe.py KIND DTYPE TILE_INDEX  # KIND persistent|inner, DTYPE int8|bf16
"""

from __future__ import annotations

import sys
import time

import torch
import triton
import triton.language as tl
from triton.tools.tensor_descriptor import TensorDescriptor

from _exp_ws_mm import TILES, _ws_inner, _ws_persistent
from lowbit.ops.tiles import grouped_tile


@triton.jit
def _ws_inner_bf16(a_desc, b_desc, c_ptr, M, N, K, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr):
    pid_m, pid_n = grouped_tile(tl.program_id(0), M, N, BLOCK_M, BLOCK_N, GROUP_M)
    om, on = pid_m * BLOCK_M, pid_n * BLOCK_N
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in tl.range(0, tl.cdiv(K, BLOCK_K), warp_specialize=True):
        acc = tl.dot(a_desc.load([om, k * BLOCK_K]), b_desc.load([on, k * BLOCK_K]).T, acc)
    offs_m = om + tl.arange(0, BLOCK_M)
    offs_n = on + tl.arange(0, BLOCK_N)
    tl.store(c_ptr + offs_m[:, None] * N + offs_n[None, :], acc.to(tl.bfloat16), mask=(offs_m < M)[:, None] & (offs_n < N)[None, :])


def main():
    kind, dtype, i = sys.argv[1], sys.argv[2], int(sys.argv[3])
    bm, bn, bk, st = TILES[i]
    m = n = k = 1024
    t0 = time.time()
    if dtype == "int8":
        a = torch.randint(-127, 128, (m, k), device="cuda", dtype=torch.int8)
        bt = torch.randint(-127, 128, (n, k), device="cuda", dtype=torch.int8)
    else:
        a = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        bt = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
        bk = bk // 2  # the same bytes a K-step
    sa, sb = torch.ones(m, device="cuda"), torch.ones(n, device="cuda")
    c = torch.empty(m, n, device="cuda", dtype=torch.bfloat16)
    a_d, b_d = TensorDescriptor.from_tensor(a, [bm, bk]), TensorDescriptor.from_tensor(bt, [bn, bk])
    tiles = triton.cdiv(m, bm) * triton.cdiv(n, bn)
    meta = dict(BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, GROUP_M=8, num_warps=4, num_stages=st)
    if dtype == "bf16":
        _ws_inner_bf16[(tiles,)](a_d, b_d, c, m, n, k, **meta)
    elif kind == "persistent":
        _ws_persistent[(min(132, tiles),)](a_d, b_d, c, sa, sb, m, n, k, min(132, tiles), **meta)
    else:
        _ws_inner[(tiles,)](a_d, b_d, c, sa, sb, m, n, k, **meta)
    print(f"{kind} {dtype} {TILES[i]}: launched (compiled) after {time.time() - t0:.1f} s", flush=True)
    torch.cuda.synchronize()
    ref = (a.float() @ bt.float().t()).to(torch.bfloat16)
    print(f"{kind} {dtype} {TILES[i]}: finished after {time.time() - t0:.1f} s, equal to float32 matmul: {torch.equal(c, ref)}, "
          f"max diff {(c.float() - ref.float()).abs().max().item():.3g}", flush=True)


if __name__ == "__main__":
    main()
