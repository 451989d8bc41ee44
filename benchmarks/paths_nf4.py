"""Time each path the weight-only op can take for an NF4 (block 64) weight on the Llama-2-7B shapes, at
1, 4 and 16 tokens, against bf16 cuBLAS: the byte GEMV, the swapped MMA kernel (both reading the
pair table) and dequantize + cuBLAS. It says which path the dispatch should pick for code tables.

    PYTHONPATH=src python benchmarks/paths_nf4.py --out paths-nf4.json
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from lowbit.formats.packing import pack
from lowbit.ops import weight_only as wo
from sweep import SHAPES  # benchmarks/, on the path when run as a script
from sweep import bench_us as bench
from sweep import write


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    gen = torch.Generator(device="cuda").manual_seed(0)
    lut = wo.code_table("nf4", torch.device("cuda"))
    rows = []
    for k, n in SHAPES:
        q = pack(torch.randint(0, 16, (n, k), generator=gen, device="cuda", dtype=torch.uint8), 4)
        s = torch.rand(n, k // 64, generator=gen, device="cuda") * 0.01
        w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
        for m in (1, 4, 16):
            x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
            ref = x.double() @ wo.dequantize_reference(q, s, None, 4, 64, k, lut, torch.float64).t()
            paths = {"bf16": lambda: F.linear(x, w),
                     "swapped": lambda: wo.mma_swapped_triton(x, q, s, None, 4, 64, lut),
                     "dequant+cuBLAS": lambda: F.linear(x, wo.dequantize_triton(q, s, None, 4, 64, k, lut))}
            if m == 1:
                paths["byte GEMV"] = lambda: wo.gemv_triton(x, q, s, None, 4, 64, lut)
            row = dict(k=k, n=n, m=m)
            for name, fn in paths.items():
                out = fn()
                if name != "bf16":
                    row[f"{name} rel_err"] = ((out.double() - ref).norm() / ref.norm()).item()
                row[f"{name} us"] = bench(fn)
            rows.append(row)
            print(" ".join(f"{key}={v:.3g}" if isinstance(v, float) else f"{key}={v}" for key, v in row.items()), flush=True)
            write(args.out, rows)


if __name__ == "__main__":
    main()
