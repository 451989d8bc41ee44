"""Sweep the few-token MMA kernel (`lowbit.ops.weight_only._mma_words_kernel`) on the Llama-2-7B
linear shapes at M = 2..64 against bf16 cuBLAS, the word GEMV, the session-3 W4A16 MMA kernel and
dequantize + cuBLAS, to set the dispatch thresholds; writes JSON.

    PYTHONPATH=src python benchmarks/tune_mma_words.py --out tune-mma.json
"""

from __future__ import annotations

import argparse
import itertools
import json

import torch
import torch.nn.functional as F
import triton

from lowbit.formats.packing import pack
from lowbit.ops import w4a16, weight_only as wo
from sweep import SHAPES  # benchmarks/, on the path when run as a script
from sweep import bench_us as bench

SCHEMES = [("int4-g128", 4, 128), ("int8-channel", 8, None)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    gen = torch.Generator(device="cuda").manual_seed(0)
    rows = []
    grid = [dict(BLOCK_N=bn, num_warps=w, num_stages=st, SPLIT_K=sp)
            for bn, w, st, sp in itertools.product((32, 64, 128), (4, 8), (3, 4), (1, 2, 4)) if not (bn == 32 and w == 8)]
    for name, bits, group in SCHEMES:
        for k, n in SHAPES:
            g = group or k
            q = pack(torch.randint(0, 2**bits, (n, k), generator=gen, device="cuda", dtype=torch.uint8), bits)
            s = torch.rand(n, k // g, generator=gen, device="cuda") * 0.01
            w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
            for m in (2, 4, 8, 16, 32, 64):
                x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
                ref = wo._reference(x.float(), q, s, None, bits, g, None, None)
                row = dict(scheme=name, k=k, n=n, m=m, bf16_us=bench(lambda: F.linear(x, w)),
                           words_us=bench(lambda: wo.gemv_words_triton(x, q, s, None, bits, g)),
                           dequant_cublas_us=bench(lambda: F.linear(x, wo.dequantize_triton(q, s, None, bits, g, k, dtype=torch.bfloat16))))
                if bits == 4:
                    row["w4a16_us"] = bench(lambda: w4a16.w4a16_matmul_triton(x, q, s, None, None, g))
                results = []
                for cfg in grid if m in (4, 16, 64) else []:
                    try:
                        out = wo.mma_words_triton(x, q, s, None, bits, g, config=cfg)
                        err = ((out.float() - ref).norm() / ref.norm()).item()
                        us = bench(lambda: wo.mma_words_triton(x, q, s, None, bits, g, config=cfg))
                    except Exception as e:  # noqa: BLE001 - a config the compiler refuses is a data point
                        rows.append(dict(scheme=name, k=k, n=n, m=m, cfg=cfg, error=str(e)[:300]))
                        continue
                    results.append((us, cfg, err))
                row["mma_default_us"] = bench(lambda: wo.mma_words_triton(x, q, s, None, bits, g))
                results.sort(key=lambda r: r[0])
                row["mma_best"] = results[:4]
                rows.append(row)
                print(json.dumps({key: (round(v, 1) if isinstance(v, float) else v) for key, v in row.items() if key != "mma_best"}),
                      [(round(u, 1), c) for u, c, _ in results[:2]], flush=True)
                with open(args.out, "w") as f:
                    json.dump(dict(info=dict(gpu=torch.cuda.get_device_name(), torch=torch.__version__, triton=triton.__version__),
                                   rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
