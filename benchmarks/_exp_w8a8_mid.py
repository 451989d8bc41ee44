"""Session 19 (one-off): W8A8 int8 at 128-512 tokens on the 7B shapes, weights read from memory. bf16 cuBLAS and
FP8 row-wise `torch._scaled_mm` against the scaled INT8 matmul (per-token quantization included) on the fixed tile
of `_mm_config` now (64 × 128: 344 programs on 11008 rows at 256 tokens, 2.6 waves on 132 SMs), other tiles, the
persistent TMA kernel and the Gluon ping-pong. µs a shape, and the 7B layer's sum a token count.

    python benchmarks/_exp_w8a8_mid.py out.json
"""
import itertools
import json
import sys

import torch
import torch.nn.functional as F

from lowbit import ops
from lowbit.ops import int8 as i8
from sweep import SHAPES, bench_cold_us, cold_copies, write

COUNT = {(4096, 4096): 4, (4096, 11008): 2, (11008, 4096): 1}
TILES = {f"{bm}x{bn}x{bk}w{w}s{st}": dict(BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, GROUP_M=8, num_warps=w, num_stages=st)
         for bm, bn, bk, w, st in [(64, 256, 128, 4, 3), (128, 128, 128, 8, 3), (128, 128, 128, 4, 4), (128, 64, 128, 4, 4),
                                   (64, 64, 128, 4, 4), (64, 128, 256, 4, 3), (128, 256, 128, 8, 3), (256, 128, 128, 8, 3)]}
TMA = {"tma128x128": dict(BLOCK_M=128, BLOCK_N=128, BLOCK_K=128, GROUP_M=8, num_warps=8, num_stages=4),
       "tma128x256": dict(BLOCK_M=128, BLOCK_N=256, BLOCK_K=128, GROUP_M=8, num_warps=8, num_stages=3),
       "tma64x128": dict(BLOCK_M=64, BLOCK_N=128, BLOCK_K=128, GROUP_M=8, num_warps=4, num_stages=4)}
gen = torch.Generator(device="cuda").manual_seed(0)
rows, total = [], {}
for m, (k, n) in itertools.product((128, 256, 512), SHAPES):
    stores = [(torch.randint(-127, 128, (n, k), generator=gen, device="cuda", dtype=torch.int8),
               torch.rand(n, generator=gen, device="cuda") * 0.01) for _ in range(cold_copies(n * k))]
    q0, s0 = stores[0]
    x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    ws = [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) for _ in range(cold_copies(2 * n * k))]
    f8 = [(w.to(torch.float8_e4m3fn), torch.rand(n, 1, device="cuda").t()) for w in ws]  # (values only for timing)
    xq, xs = ops.quantize_rows(x)
    ref = (xq.double() * xs.double()[:, None]) @ (q0.double() * s0.double()[:, None]).t()
    row = dict(k=k, n=n, m=m, now_tile=i8._mm_config(m, n, k, True), bf16=round(bench_cold_us([lambda w=w: F.linear(x, w) for w in ws]), 2))

    def fp8(w8, sw):
        xf = x.to(torch.float8_e4m3fn)
        return torch._scaled_mm(xf, w8.t(), torch.ones(m, 1, device="cuda"), sw, out_dtype=torch.bfloat16)

    row["fp8-scaled_mm"] = round(bench_cold_us([lambda w8=w8, sw=sw: fp8(w8, sw) for w8, sw in f8]), 2)

    def w8a8(q, s, cfg=None, tma=None):
        codes, sx = ops.quantize_rows(x)
        if tma is not None:
            return i8.scaled_int8_mm_tma(codes, q, sx, s, None, torch.bfloat16, tile=tma or None)
        return i8.scaled_int8_mm_triton(codes, q.t(), sx, s, None, torch.bfloat16, config=cfg)

    variants = {"now": {}, **{k_: dict(cfg=c) for k_, c in TILES.items()}, **{k_: dict(tma=c) for k_, c in TMA.items()},
                "pingpong": dict(tma={})}
    for name, kw in variants.items():
        try:
            out = w8a8(q0, s0, **kw)
            err = ((out.double() - ref).norm() / ref.norm()).item()
            row[name] = [round(bench_cold_us([lambda q=q, s=s: w8a8(q, s, **kw) for q, s in stores]), 2), f"{err:.1e}"]
        except Exception as e:  # a tile that does not compile or fit
            row[name] = [None, f"{type(e).__name__}: {str(e)[:80]}"]
    for name, v in row.items():
        if name in ("k", "n", "m", "now_tile"):
            continue
        t = v if isinstance(v, float) else v[0]
        if t is None:
            continue
        total.setdefault(m, {}).setdefault(name, 0.0)
        total[m][name] = round(total[m][name] + COUNT[(k, n)] * t, 1)
    print(json.dumps(row), flush=True)
    rows.append(row)
for m, v in total.items():
    print(m, json.dumps(dict(sorted(v.items(), key=lambda t: t[1]))))
write(sys.argv[1], dict(rows=rows, layer_sums_us=total))
