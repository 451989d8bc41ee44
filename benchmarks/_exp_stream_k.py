"""Experiment (session 12, not yet run: the device was not lent again): stream-K for the INT8 TMA matmul
(`ops.int8._scaled_mm_stream_k_kernel`) on the shapes whose tiles leave SMs idle in their last wave: the weight
gradients of a llama2-1b training step over 32768 tokens, which it computes in bf16 (1536 x 1536: 72 tiles of
128 x 256 for 132 SMs, one wave at 55 %; 6144 x 1536: 288 tiles, three waves at 73 %). TFLOP/s (do_bench, L2
flushed, direct launches) of the TMA kernel on its tiles (128 x 256 for bf16 outputs, 128 x 128 for fp32) and of
stream-K on 128 x 256, each checked equal to the bit; a forward shape too, where stream_k_pays says no.

    python3 benchmarks/_exp_stream_k.py --out $OUT/stream-k.json
"""

from __future__ import annotations

import argparse
import json

import torch
import triton
import triton.testing

from lowbit.ops import int8 as int8_ops
from sweep import write

TOKENS = 16 * 2048
SHAPES = [(1536, 1536, TOKENS, 4), (6144, 1536, TOKENS, 2), (1536, 6144, TOKENS, 1), (TOKENS, 1536, 1536, 8)]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    args = p.parse_args()
    gen = torch.Generator(device="cuda").manual_seed(0)
    rows = []
    for m, n, k, count in SHAPES:
        a = torch.randint(-127, 128, (m, k), device="cuda", dtype=torch.int8, generator=gen)
        bt = torch.randint(-127, 128, (n, k), device="cuda", dtype=torch.int8, generator=gen)
        sa = torch.rand(m, device="cuda", generator=gen) * 1e-3
        sb = torch.rand(n, device="cuda", generator=gen) * 1e-3
        row = dict(m=m, n=n, k=k, count_a_layer=count, stream_k_pays=int8_ops.stream_k_pays(m, n, k, int8_ops.sm_count(a.device)))
        for dtype in (torch.float32, torch.bfloat16):
            def run(stream_k):
                return int8_ops.scaled_int8_mm_tma(a, bt, sa, sb, None, dtype, stream_k=stream_k)
            same = torch.equal(run(True), run(False))
            for label, sk in (("tiles", False), ("stream_k", True)):
                ms = triton.testing.do_bench(lambda: run(sk), rep=100)
                row[f"{label}_{str(dtype)[6:]}"] = dict(us=round(ms * 1e3, 1), tflops=round(2 * m * n * k / (ms * 1e-3) / 1e12, 1))
            row[f"equal_{str(dtype)[6:]}"] = same
        print(json.dumps(row), flush=True)
        rows.append(row)
        write(args.out, rows)


if __name__ == "__main__":
    main()
