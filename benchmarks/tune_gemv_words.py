"""Sweep the word GEMV (`lowbit.ops.weight_only._gemv_words_kernel`) on the Llama-2-7B linear shapes
against bf16 cuBLAS and the byte GEMV of session 3, then time every path at M = 1..16 to set the
dispatch thresholds; writes JSON. Optional: dump the word kernel's TTGIR (every compiled variant) for reading.

    PYTHONPATH=src python benchmarks/tune_gemv_words.py --out tune.json [--asm-dir DIR]
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from lowbit.formats.packing import pack
from lowbit.ops import w4a16, weight_only as wo
from sweep import SHAPES  # benchmarks/, on the path when run as a script
from sweep import bench_us as bench
from sweep import write

# (name, bits, group or None for one scale a row, code dtype or None for packed uint8, lut name)
SCHEMES = [
    ("int4-g128", 4, 128, None, None),
    ("int8-channel", 8, None, None, None),
    ("nf4-b64", 4, 64, None, "nf4"),
    ("sint8-channel", 8, None, torch.int8, None),
    ("e4m3-channel", 8, None, torch.float8_e4m3fn, None),
]


def storage(k, n, bits, group, dtype, gen):
    if dtype is None:
        q = pack(torch.randint(0, 2**bits, (n, k), generator=gen, device="cuda", dtype=torch.uint8), bits)
    elif dtype == torch.int8:
        q = torch.randint(-127, 128, (n, k), generator=gen, device="cuda", dtype=torch.int8)
    else:
        q = (torch.randn(n, k, generator=gen, device="cuda") * 4).to(dtype)
    s = torch.rand(n, k // group, generator=gen, device="cuda") * 0.01
    return q, s


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--asm-dir")
    ap.add_argument("--quick", action="store_true", help="one shape, few configs (a smoke test)")
    args = ap.parse_args()
    gen = torch.Generator(device="cuda").manual_seed(0)
    rows, best_of = [], {}
    grid = list(itertools.product((4, 8, 16, 32), (32, 64, 128, 256), (1, 2, 4, 8)))
    shapes = SHAPES[:1] if args.quick else SHAPES
    for name, bits, group, dtype, lut_name in SCHEMES:
        for k, n in shapes:
            g = group or k
            q, s = storage(k, n, bits, g, dtype, gen)
            lut = wo.code_table(lut_name, "cuda") if lut_name else None
            w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
            x1 = torch.randn(1, k, device="cuda", dtype=torch.bfloat16)
            ref = wo._reference(x1.float(), q, s, None, bits, g, lut, None) if dtype is None else x1.float() @ (q.float() * s).t()
            base = bench(lambda: F.linear(x1, w))
            # the full grid for the two integer schemes; the others try the integer winners
            cands = grid if name in ("int4-g128", "int8-channel") else best_of.get((bits, k, n), [])[:6]
            if args.quick:
                cands = cands[:8]
            results = []
            for bn, bw, warps in cands:
                per_thread = bn * bw * (32 // bits) // (32 * warps)  # codes a thread takes a step
                if not 16 <= per_thread <= 128:  # below: loop overhead dominates (sm90_asm.py); above: registers
                    continue
                cfg = dict(BLOCK_N=bn, BLOCK_W=bw, num_warps=warps)
                try:
                    out = wo.gemv_words_triton(x1, q, s, None, bits, g, lut, config=cfg)
                    err = ((out.float() - ref).norm() / ref.norm()).item()
                    us = bench(lambda: wo.gemv_words_triton(x1, q, s, None, bits, g, lut, config=cfg))
                except Exception as e:  # noqa: BLE001 - a config the compiler refuses is a data point
                    rows.append(dict(scheme=name, k=k, n=n, m=1, cfg=cfg, error=str(e)[:300]))
                    continue
                rows.append(dict(scheme=name, k=k, n=n, m=1, cfg=cfg, us=us, bf16_us=base, speedup=base / us, rel_err=err,
                                 GB_s=(q.numel() * q.element_size() + s.numel() * 4) / us / 1e3))
                results.append((us, (bn, bw, warps)))
            results.sort()
            if name in ("int4-g128", "int8-channel"):
                best_of[(bits, k, n)] = [c for _, c in results]
            old_us = None
            if dtype is None:
                try:
                    old_us = bench(lambda: wo.gemv_triton(x1, q, s, None, bits, g, lut))
                except Exception as e:  # noqa: BLE001
                    old_us = str(e)[:200]
            summary = dict(scheme=name, k=k, n=n, m=1, bf16_us=base, best=results[:5], byte_gemv_us=old_us)
            rows.append(summary)
            print(json.dumps(summary), flush=True)
            write(args.out, rows)
    # token counts: the best one-token tile at M = 1..16 (one program row a token), against the other paths
    for name, bits, group, dtype, lut_name in SCHEMES[:2] if not args.quick else []:
        for k, n in SHAPES:
            g = group or k
            q, s = storage(k, n, bits, g, dtype, gen)
            w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
            bn, bw, warps = best_of[(bits, k, n)][0]
            for m in (1, 2, 4, 8, 16):
                xm = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
                row = dict(scheme=name, k=k, n=n, m=m, bf16_us=bench(lambda: F.linear(xm, w)),
                           dequant_cublas_us=bench(lambda: F.linear(xm, wo.dequantize_triton(q, s, None, bits, g, k, dtype=torch.bfloat16))))
                cfg = dict(BLOCK_N=bn, BLOCK_W=bw, num_warps=warps)
                row["words_us"] = bench(lambda: wo.gemv_words_triton(xm, q, s, None, bits, g, config=cfg))
                row["byte_gemv_us"] = bench(lambda: wo.gemv_triton(xm, q, s, None, bits, g))
                if bits == 4:
                    row["mma_us"] = bench(lambda: w4a16.w4a16_matmul_triton(xm, q, s, None, None, g))
                rows.append(row)
                print(json.dumps(row), flush=True)
            write(args.out, rows)
    if args.asm_dir:
        d = Path(args.asm_dir)
        d.mkdir(parents=True, exist_ok=True)
        for kern, tag in ((wo._gemv_words_kernel, "words"),):
            cache = kern.device_caches[torch.cuda.current_device()][0]
            with open(d / f"{tag}.ttgir.txt", "w") as f:  # every compiled variant, its key first
                for key, compiled in cache.items():
                    f.write(f"// ===== {key}\n{compiled.asm['ttgir']}\n")


if __name__ == "__main__":
    main()
