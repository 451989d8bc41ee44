"""Experiment (session 13, compiled on the CPU only; not yet run: no device time was left): the Gluon ping-pong
matmul of `ops.int8_hopper` on E4M3 operands, against cuBLAS's `torch._scaled_mm` (row-wise scales, with and without
fast accumulation) on the six matmul shapes of a llama2-1b training step at 16 x 2048 tokens and on squares.

Why: fp8-rowwise training runs its matmuls in cuBLAS (1.14x bf16, session 13), where the gradients' matmuls
(use_fast_accum=False) made 888-1184 TFLOP/s in session 11 against the INT8 Gluon kernel's 911-1394 TOP/s. The
Gluon kernel adds the MMA's reduced-precision sums into full fp32 once a K-step of 128 (`FP8_PROMOTE`), the
interval CUTLASS's FP8 kernels promote at, so it may stand in for both. Each row: µs (do_bench), TFLOP/s, and the
relative error of each output against float64 math on the same E4M3 codes and scales.

    python3 benchmarks/_exp_fp8_pingpong.py --out $OUT/fp8-pingpong.json
"""

from __future__ import annotations

import argparse
import json

import torch
import triton.testing

from _exp_pingpong import SQUARES, STEP
from lowbit.ops import int8_hopper
from sweep import write


def e4m3_rows(x: torch.Tensor):
    """Row-wise E4M3 codes and fp32 scales (absmax / 448)."""
    scale = x.abs().amax(dim=1).float().clamp(min=1e-12) / 448.0
    return (x / scale[:, None]).to(torch.float8_e4m3fn), scale


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    args = p.parse_args()
    gen = torch.Generator(device="cuda").manual_seed(0)
    rows = []
    for m, n, k, calls in STEP + SQUARES:
        a, sa = e4m3_rows(torch.randn(m, k, device="cuda", generator=gen, dtype=torch.bfloat16))
        bt, sb = e4m3_rows(torch.randn(n, k, device="cuda", generator=gen, dtype=torch.bfloat16))
        ref = (a.double() * sa.double()[:, None]) @ (bt.double() * sb.double()[:, None]).t()
        runs = {
            "cublas_fast": lambda: torch._scaled_mm(a, bt.t(), scale_a=sa[:, None], scale_b=sb[None, :],
                                                    out_dtype=torch.bfloat16, use_fast_accum=True),
            "cublas": lambda: torch._scaled_mm(a, bt.t(), scale_a=sa[:, None], scale_b=sb[None, :],
                                               out_dtype=torch.bfloat16, use_fast_accum=False),
            "gluon": lambda: int8_hopper.scaled_mm_pingpong(a, bt, sa, sb, None, torch.bfloat16),
        }
        row = dict(m=m, n=n, k=k, calls_a_layer=calls)
        for name, fn in runs.items():
            out = fn()
            err = ((out.double() - ref).norm() / ref.norm()).item()
            ms = triton.testing.do_bench(fn, rep=100)
            row[name] = dict(us=round(ms * 1e3, 1), tflops=round(2 * m * n * k / (ms * 1e-3) / 1e12, 1), err=float(f"{err:.3g}"))
        print(json.dumps(row), flush=True)
        rows.append(row)
        write(args.out, rows)


if __name__ == "__main__":
    main()
