"""Session 18: the word GEMV as fewer, longer programs that stream their row blocks, against the kernel as it is.

Session 17 found the word GEMV at 1.6-1.7x a bare read of its bytes: each program runs two K-steps and all start
together, so their loads and their arithmetic do not overlap, and 1376 programs on 4096 → 11008 make a second, thin
wave (56 registers a thread: 9 programs of 4 warps an SM). Here each of P programs takes row blocks first, first + P,
... as one flattened loop of (row block, K-step), loading the next step (the next row block's first, across the
boundary) while this one's arithmetic runs. Int4 g128 with zero points (W4A16), the 7B shapes at one token, weights
read from memory (copies cycled past the L2), µs from CUDA-graph replay; errors against float64.

    PYTHONPATH=src:benchmarks python benchmarks/_exp_row_loop.py --out row-loop.json
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from lowbit.ops import weight_only as wo


@triton.jit
def _row_loop_kernel(
    x_ptr, w_ptr, s_ptr, z_ptr, out_ptr, BLOCKS, stride_xm, stride_om, magic,
    stride_wn: tl.constexpr, stride_sn: tl.constexpr, stride_zn: tl.constexpr, BITS: tl.constexpr,
    GROUP_W: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_W: tl.constexpr, STEPS: tl.constexpr,
):
    """`_gemv_words_kernel`'s integer path with V = 2 and a whole step in flight, over the row blocks first, first + P, ...
    (P programs on axis 1): K = STEPS whole steps, N = BLOCKS whole row blocks, a scale and zero point a group."""
    V: tl.constexpr = 2
    PER: tl.constexpr = 32 // BITS
    C: tl.constexpr = BLOCK_W // V
    pid_m = tl.program_id(0)
    first = tl.program_id(1)
    progs = tl.num_programs(1)
    mine = tl.cdiv(BLOCKS - first, progs)
    r = tl.arange(0, BLOCK_N)
    cols = tl.arange(0, C) * V
    tile = r[:, None] * stride_wn + cols[None, :]
    i = tl.arange(0, PER)
    x_tile = x_ptr + pid_m * stride_xm + cols[None, :] * PER + i[:, None]
    base = w_ptr + first * (BLOCK_N * stride_wn)
    w_next = tl.load(base + tile)
    w_next1 = tl.load(base + tile + 1)
    acc = tl.zeros((BLOCK_N, C), dtype=tl.float32)
    for it in range(0, mine * STEPS):
        s = it % STEPS
        rows = (first + (it // STEPS) * progs) * BLOCK_N + r
        w_cur = w_next
        w_cur1 = w_next1
        # the next step: this block's next, or the next block's first (past the last block: the last again, unused)
        nb = tl.minimum(first + ((it + 1) // STEPS) * progs, BLOCKS - 1)
        nbase = w_ptr + nb * (BLOCK_N * stride_wn) + ((it + 1) % STEPS) * BLOCK_W
        w_next = tl.load(nbase + tile)
        w_next1 = tl.load(nbase + tile + 1)
        x0 = tl.permute(tl.load(x_tile + s * (BLOCK_W * PER)).to(tl.float32), (1, 0))
        x1 = tl.permute(tl.load(x_tile + s * (BLOCK_W * PER) + PER).to(tl.float32), (1, 0))
        t, sx = wo._words_chain(w_cur, w_cur, x0, BITS, False, True)
        t, sx1 = wo._words_chain(t, w_cur1, x1, BITS, False, False)
        g = (s * BLOCK_W + cols) // GROUP_W
        zp = z_ptr + rows[:, None] * stride_zn + g[None, :]
        t -= wo._zero_point(zp, magic, BITS, True) * ((sx + sx1) * 2.5849394142282115e-26)[None, :]  # 2^-85
        acc += t * tl.load(s_ptr + rows[:, None] * stride_sn + g[None, :])
        if s == STEPS - 1:
            out = tl.sum(acc, axis=1) * 3.8685626227668134e25  # 2^85
            tl.store(out_ptr + pid_m * stride_om + rows, out.to(out_ptr.dtype.element_ty))
            acc = tl.zeros((BLOCK_N, C), dtype=tl.float32)


def row_loop(x, q, s, z, group: int, progs: int, block_n: int = 8, block_w: int = 256, warps: int = 4):
    """x [M, K] @ the int4 g`group` weight (q, s, z) ᵀ by `progs` programs a token."""
    m, k = x.shape
    n = q.shape[0]
    words = wo._as_words(q, k, 4)
    kw = words.shape[1]
    assert kw % block_w == 0 and n % block_n == 0 and (group * 4 // 32) % 2 == 0
    blocks = n // block_n
    out = torch.empty(m, n, device=x.device, dtype=x.dtype)
    x = x.contiguous()
    _row_loop_kernel[(m, min(progs, blocks))](
        x, words, s, z, out, blocks, x.stride(0), out.stride(0), 0x4B000000,
        stride_wn=words.stride(0), stride_sn=s.stride(0), stride_zn=z.stride(0), BITS=4, GROUP_W=group * 4 // 32,
        BLOCK_N=block_n, BLOCK_W=block_w, STEPS=kw // block_w, num_warps=warps,
    )
    return out


def main() -> None:
    from _exp_words_chain import read_floor_us
    from sweep import SHAPES, bench_cold_us, cold_copies, out_path, storage, write
    import torch.nn.functional as F

    out = out_path(__doc__)
    gen = torch.Generator(device="cuda").manual_seed(0)
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    rows = []
    for k, n in SHAPES:
        stores = [storage(k, n, 4, 128, True, None, gen) for _ in range(cold_copies(n * k // 2))]
        q, s, z = stores[0]
        x = torch.randn(1, k, device="cuda", dtype=torch.bfloat16)
        ref = x.double() @ wo.dequantize_reference(q, s, z, 4, 128, k, None, torch.float64).t()
        ws = [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) for _ in range(cold_copies(2 * n * k))]
        row = dict(k=k, n=n, bf16_us=bench_cold_us([lambda w=w: F.linear(x, w) for w in ws]))
        cfg = wo.words_config(n, k, 4, 128)
        row["kernel"] = dict(cfg=cfg, us=bench_cold_us([lambda st=st: wo._launch_words(x, *st, 4, 128, None, None, cfg) for st in stores]))
        words = [wo._as_words(st[0], k, 4) for st in stores]
        row["read floor 8x128x4w"] = read_floor_us(words, 8, 128, 4)  # the same bytes read, no arithmetic
        for bn, bw, warps in ((8, 256, 4), (8, 128, 2)):
            if (k // 8) % bw:
                continue
            for per_sm in (2, 4, 6, 8, 9, 10, 12, 16):
                progs = sms * per_sm
                got = row_loop(x, q, s, z, 128, progs, bn, bw, warps).double()
                err = ((got - ref).norm() / ref.norm()).item()
                us = bench_cold_us([lambda st=st: row_loop(x, *st, 128, progs, bn, bw, warps) for st in stores])
                row[f"loop {bn}x{bw}x{warps}w {per_sm}/SM"] = dict(progs=progs, us=us, err=err)
        rows.append(row)
        print(row, flush=True)
        write(out, rows)


if __name__ == "__main__":
    main()
