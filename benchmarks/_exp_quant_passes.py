"""Experiment (session 11): the two quantization passes of `ops.rows_cols` at a training step's shapes (llama2-1b,
16 x 2048 tokens), tile by tile, in GB/s against a device copy of the same tensor. Pass 1 (absmax, strips) reads
2 bytes an element of bf16; pass 2 (codes) reads 2 and writes 2 (rows and columns). Every tile's codes are checked
against the library's own call.

    python3 benchmarks/_exp_quant_passes.py --out $OUT/quant-passes.json
"""

from __future__ import annotations

import argparse
import json

import torch
import triton

from lowbit.formats import int as intfmt
from lowbit.ops import rows_cols as rc
from lowbit.ops.tiles import cdiv

SHAPES = [((32768, 1536), torch.bfloat16), ((32768, 6144), torch.bfloat16), ((6144, 1536), torch.float32)]
ABSMAX = [(64, 128, 4, 8), (32, 128, 4, 8), (32, 256, 4, 8), (16, 256, 4, 16), (64, 128, 8, 8), (128, 128, 8, 4),
          (32, 128, 2, 16), (64, 256, 8, 4), (16, 512, 4, 8), (8, 512, 4, 16)]
CODES = [(64, 128, 4), (32, 128, 4), (64, 128, 8), (32, 256, 4), (64, 256, 8), (128, 128, 8), (16, 256, 4), (128, 64, 4)]


def ms(fn) -> float:
    return triton.testing.do_bench(fn, warmup=10, rep=50)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    args = p.parse_args()
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    rows = []
    for (m, n), dtype in SHAPES:
        x = torch.randn(m, n, device="cuda", dtype=dtype)
        el = x.element_size()
        row = {"m": m, "n": n, "dtype": str(dtype), "copy_GBps": 2 * m * n * el / ms(lambda: x.clone()) / 1e6}
        ref = rc.quantize_rows_cols_triton(x)
        for bm, bn, w, per_sm in ABSMAX:
            amax = torch.zeros(m, device="cuda", dtype=torch.int32)
            cam = torch.zeros(n, device="cuda", dtype=torch.int32)
            r = max(1, cdiv(cdiv(m, bm) * cdiv(n, bn), per_sm * sms)) * bm

            def run():
                rc._absmax_tiles_kernel[(cdiv(n, bn), cdiv(m, r))](x, amax, cam, m, n, x.stride(0), x.stride(1), r, BLOCK_M=bm, BLOCK_N=bn, COLS=True, num_warps=w)
            run()
            ok = torch.equal(intfmt.absmax_scale(amax.view(torch.float32), 127.0), ref[1]) and torch.equal(intfmt.absmax_scale(cam.view(torch.float32), 127.0), ref[3])
            row[f"absmax {bm}x{bn} w{w} {per_sm}/SM"] = (m * n * el / ms(run) / 1e6, ok)
        for fmt, fp8 in (("int8", False), ("e4m3", True)):
            ref = rc.quantize_rows_cols_triton(x, fmt=fmt)
            for bm, bn, w in CODES:
                dt = rc.FORMATS[fmt][0]
                q, qt = torch.empty(m, n, device="cuda", dtype=dt), torch.empty(n, m, device="cuda", dtype=dt)

                def run():
                    rc._quantize_tiles_kernel[(cdiv(m, bm), cdiv(n, bn))](x, ref[1], q, ref[3], qt, ref[1], m, n, x.stride(0), x.stride(1), q.stride(0), qt.stride(0),
                                                                         BLOCK_M=bm, BLOCK_N=bn, FP8=fp8, STOCHASTIC=False, COLS=True, EMULATE_FP8=False, num_warps=w)
                run()
                ok = torch.equal(q.view(torch.int8), ref[0].view(torch.int8)) and torch.equal(qt.view(torch.int8), ref[2].view(torch.int8))
                row[f"codes {fmt} {bm}x{bn} w{w}"] = (m * n * (el + 2) / ms(run) / 1e6, ok)
        rows.append(row)
        best = {k: max((v for kk, v in row.items() if kk.startswith(k) and v[1]), default=None) for k in ("absmax", "codes int8", "codes e4m3")}
        print(f"{m}x{n} {dtype}: copy {row['copy_GBps']:.0f} GB/s; " + "; ".join(
            f"{k} default {row[[kk for kk in row if kk.startswith(k)][0]][0]:.0f}, best {max((v[0], kk) for kk, v in row.items() if kk.startswith(k) and v[1])}"
            for k in best), flush=True)
    with open(args.out, "w") as f:
        json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__, "triton": triton.__version__, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
