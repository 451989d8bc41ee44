"""Session 10, call 5 (one-off): W8A8 int8 at 16-128 tokens on the 7B shapes, weights read from memory: bf16 cuBLAS,
the weight-only kernels on the signed codes (what W8A8 takes up to VALUES_MAX_M tokens), and per-token quantization +
the scaled INT8 matmul with its tile now and with narrower ones (the tile now gives cdiv(N, 128) programs: 32 on 4096
rows, a quarter of the SMs). µs a shape and the 7B layer's sum."""
import itertools, json, sys
import torch
import torch.nn.functional as F
from lowbit import ops
from lowbit.ops import int8 as i8
from lowbit.ops import weight_only as wo
from sweep import SHAPES, bench_cold_us, cold_copies, write

COUNT = {(4096, 4096): 4, (4096, 11008): 2, (11008, 4096): 1}
TILES = {f"{bm}x{bn}x{bk}w{w}s{st}": dict(BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, GROUP_M=8, num_warps=w, num_stages=st)
         for bm, bn, bk, w, st in [(32, 64, 128, 4, 4), (32, 32, 128, 4, 4), (64, 64, 128, 4, 4), (64, 32, 128, 4, 4),
                                   (16, 64, 256, 4, 3), (32, 64, 256, 4, 3), (64, 64, 256, 4, 3), (128, 64, 128, 4, 4), (128, 128, 128, 8, 3)]}
gen = torch.Generator(device="cuda").manual_seed(0)
rows, total = [], {}
for m, (k, n) in itertools.product((16, 32, 64, 128), SHAPES):
    stores = [((torch.randint(-127, 128, (n, k), generator=gen, device="cuda", dtype=torch.int8)),
               torch.rand(n, generator=gen, device="cuda") * 0.01) for _ in range(cold_copies(n * k))]
    q0, s0 = stores[0]
    x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    ws = [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) for _ in range(cold_copies(2 * n * k))]
    xq, xs = ops.quantize_rows(x)
    ref = (xq.double() * xs.double()[:, None]) @ (q0.double() * s0.double()[:, None]).t()
    row = dict(k=k, n=n, m=m, now=i8._mm_config(m, n, k), bf16=round(bench_cold_us([lambda w=w: F.linear(x, w) for w in ws]), 2),
               values=round(bench_cold_us([lambda q=q, s=s: wo.weight_only_linear(x, q, s.reshape(-1, 1), None, 8, k) for q, s in stores]), 2))

    def w8a8(q, s, cfg=None):
        codes, sx = ops.quantize_rows(x)
        return i8.scaled_int8_mm_triton(codes, q.t(), sx, s, None, torch.bfloat16, config=cfg)

    for name, cfg in {"w8a8-now": None, **TILES}.items():
        out = w8a8(q0, s0, cfg)
        err = ((out.double() - ref).norm() / ref.norm()).item()
        row[name] = [round(bench_cold_us([lambda q=q, s=s: w8a8(q, s, cfg) for q, s in stores]), 2), f"{err:.1e}"]
    for name, v in row.items():
        if name in ("k", "n", "m", "now"):
            continue
        t = v if isinstance(v, float) else v[0]
        total.setdefault(m, {}).setdefault(name, 0.0)
        total[m][name] = round(total[m][name] + COUNT[(k, n)] * t, 1)
    print(json.dumps(row), flush=True)
    rows.append(row)
for m, v in total.items():
    print(m, json.dumps(dict(sorted(v.items(), key=lambda t: t[1]))))
write(sys.argv[1], dict(rows=rows, layer_sums_us=total))
