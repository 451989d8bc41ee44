"""Session 18: the few-token word GEMV (`gemv_tokens_triton`, TOKENS tokens a program, each code made once for all of
them) against what the dispatch runs at 2-16 tokens: the swapped MMA kernel, and the one-token word GEMV once a token.

The seven Llama-2-7B linears, per storage (int4 g128 with zero points, NF4 b64), weights read
from memory (copies cycled past the L2), µs of the layer from CUDA-graph replay, beside bf16 cuBLAS; each answer checked
against float64 first.

    PYTHONPATH=src:benchmarks python benchmarks/_exp_tokens.py --out tokens.json
"""

from __future__ import annotations

import collections

import torch
import torch.nn.functional as F

from lowbit.bench.dispatch import LAYER
from lowbit.ops import weight_only as wo
from sweep import bench_cold_us, cold_copies, out_path, storage, write

KINDS = [("int4-g128-zero", 4, 128, True, None, None), ("nf4-b64", 4, 64, False, None, "nf4")]
TILES = [(8, 256, 4), (4, 256, 4), (2, 256, 4)]  # (BLOCK_N, BLOCK_W, warps)


def main() -> None:
    out = out_path(__doc__)
    gen = torch.Generator(device="cuda").manual_seed(0)
    rows = []
    for name, bits, group, zero, dtype, table in KINDS:
        lut = wo.code_table(table, torch.device("cuda")) if table else None
        stores = {(k, n): [storage(k, n, bits, group or k, zero, dtype, gen) for _ in range(cold_copies(n * k * bits // 8))]
                  for k, n in LAYER}
        exact = {(k, n): wo.dequantize_reference(*stores[(k, n)][0], bits, group or k, k, lut, torch.float64) for k, n in LAYER}
        floats = {(k, n): [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) for _ in range(cold_copies(2 * n * k))]
                  for k, n in LAYER}
        for m in (2, 4, 8, 16):
            us = collections.Counter()
            for (k, n), count in LAYER.items():
                g = group or k
                x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
                ref = x.double() @ exact[(k, n)].t()
                us["bf16"] += count * bench_cold_us([lambda w=w: F.linear(x, w) for w in floats[(k, n)]])
                paths = {"swapped": lambda q, s, z: wo.mma_swapped_triton(x, q, s, z, bits, g, lut)}
                if m <= 8:
                    paths["words x m"] = lambda q, s, z: wo.gemv_words_triton(x, q, s, z, bits, g, lut)
                for t in sorted({min(8, m), min(4, m)}):
                    for bn, bw, nw in TILES:
                        cfg = dict(TOKENS=t, BLOCK_N=bn, BLOCK_W=bw, V=2, num_warps=nw)
                        paths[f"tokens T{t} {bn}x{bw}x{nw}w"] = lambda q, s, z, cfg=cfg: wo.gemv_tokens_triton(x, q, s, z, bits, g, lut, config=cfg)
                for path, fn in paths.items():
                    got = fn(*stores[(k, n)][0]).double()
                    err = ((got - ref).norm() / ref.norm()).item()
                    if not err < 2e-2:
                        raise AssertionError(f"{name} {path} m={m} K={k} N={n}: relative error {err}")
                    us[path] += count * bench_cold_us([lambda st=st, fn=fn: fn(*st) for st in stores[(k, n)]])
            best = min((p for p in us if p.startswith("tokens")), key=us.__getitem__)
            row = dict(kind=name, m=m, us={p: round(v, 2) for p, v in us.items()}, best_tokens=best,
                       best_tokens_x_bf16=round(us["bf16"] / us[best], 3), swapped_x_bf16=round(us["bf16"] / us["swapped"], 3))
            rows.append(row)
            print({key: row[key] for key in ("kind", "m", "best_tokens", "best_tokens_x_bf16", "swapped_x_bf16")},
                  {p: row["us"][p] for p in ("bf16", "swapped", "words x m") if p in row["us"]}, flush=True)
            write(out, rows)


if __name__ == "__main__":
    main()
