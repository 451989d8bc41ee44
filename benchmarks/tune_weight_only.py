"""Sweep the weight-only decode kernel's tile (BLOCK_N, K-step, warps) on the Llama-2-7B linear
shapes, against bf16 cuBLAS and the W4A16 MMA kernel at the same token counts; writes JSON.

    PYTHONPATH=src python benchmarks/tune_weight_only.py --out tune.json
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json

import torch
import torch.nn.functional as F
import triton

from lowbit.formats.packing import pack
from lowbit.ops import w4a16, weight_only
from sweep import SHAPES, bench_us  # benchmarks/, on the path when run as a script

bench = functools.partial(bench_us, rep=30)


def storage(k: int, n: int, bits: int, group: int, gen: torch.Generator):
    codes = torch.randint(0, 2**bits, (n, k), generator=gen, device="cuda", dtype=torch.uint8)
    scale = torch.rand(n, k // group, generator=gen, device="cuda") * 0.01
    zero = torch.randint(0, 2**bits, (n, k // group), generator=gen, device="cuda", dtype=torch.uint8)
    return pack(codes, bits), scale, zero


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    gen = torch.Generator(device="cuda").manual_seed(0)
    rows = []
    for bits, group in ((4, 128), (8, None)):
        tw = 128 if bits == 4 else 64
        for k, n in SHAPES:
            g = group or k
            q, s, z = storage(k, n, bits, g, gen)
            w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
            x1 = torch.randn(1, k, device="cuda", dtype=torch.bfloat16)
            base = bench(lambda: F.linear(x1, w))
            best = None
            for bn, span, warps in itertools.product((2, 4, 8), (512, 1024, 2048), (2, 4)):
                cfg = dict(BLOCK_N=bn, TG=max(1, span // tw), TW=tw, num_warps=warps)
                try:
                    us = bench(lambda: weight_only.gemv_triton(x1, q, s, z, bits, g, config=cfg))
                except Exception as e:  # noqa: BLE001 - a config the compiler refuses is a data point
                    rows.append(dict(bits=bits, k=k, n=n, m=1, cfg=cfg, error=str(e)[:200]))
                    continue
                rows.append(dict(bits=bits, k=k, n=n, m=1, cfg=cfg, us=us, bf16_us=base, speedup=base / us,
                                 GB_s=(q.numel() + s.numel() * 4 + z.numel()) / us / 1e3))
                if best is None or us < best[0]:
                    best = (us, cfg)
            print(f"bits {bits} K {k} N {n}: bf16 {base:.1f} us, best {best[0]:.1f} us {best[1]} -> {base / best[0]:.2f}x", flush=True)
            for m in (1, 2, 4, 16, 64):
                xm = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
                row = dict(bits=bits, k=k, n=n, m=m, best_cfg=best[1],
                           bf16_us=bench(lambda: F.linear(xm, w)),
                           gemv_us=bench(lambda: weight_only.gemv_triton(xm, q, s, z, bits, g, config=best[1])),
                           dequant_cublas_us=bench(lambda: F.linear(xm, weight_only.dequantize_triton(q, s, z, bits, g, k, dtype=torch.bfloat16))))
                if bits == 4:
                    row["mma_us"] = bench(lambda: w4a16.w4a16_matmul_triton(xm, q, s, z, None, g))
                rows.append(row)
                print({key: (round(v, 1) if isinstance(v, float) else v) for key, v in row.items()}, flush=True)
    info = dict(gpu=torch.cuda.get_device_name(), torch=torch.__version__, triton=triton.__version__)
    with open(args.out, "w") as f:
        json.dump(dict(info=info, rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
