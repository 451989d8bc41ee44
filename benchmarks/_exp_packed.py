"""Session 9, call 3 (one-off): the swapped kernel's 4-bit paths side by side on weights read from memory, µs.
old: codes one at a time; v1: PACKED (two at a time, z in the codes); v2: PACKED with the zero point applied
after the MMA (z loaded a step ahead, Σx by a second MMA on ones); with tiles around the default."""
import itertools, json, sys
import torch
from lowbit.ops import weight_only as wo
from sweep import SHAPES, bench_cold_us, cold_copies, storage

VARIANTS = {"old": dict(PACKED=False), "v1": {}, "v2": dict(ZERO_AFTER=True),
            "v1-s5": dict(num_stages=5), "v2-s5": dict(ZERO_AFTER=True, num_stages=5),
            "v1-bn128-w8": dict(BLOCK_N=128, num_warps=8), "v2-bn128-w8": dict(BLOCK_N=128, num_warps=8, ZERO_AFTER=True),
            "v1-bn128": dict(BLOCK_N=128), "v1-split-x2": "x2"}
gen = torch.Generator(device="cuda").manual_seed(0)
rows = []
for (k, n), m, zero in itertools.product(SHAPES, (1, 16), (True, False)):
    stores = [storage(k, n, 4, 128, zero, None, gen) for _ in range(cold_copies(n * k // 2))]
    q, s, z = stores[0]
    x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    ref = x.double() @ wo.dequantize_reference(q, s, z, 4, 128, k, None, torch.float64).t()
    base = wo.swapped_config(m, n, k, 4, 128)
    row = dict(k=k, n=n, m=m, zero=zero, default=base)
    for name, extra in VARIANTS.items():
        if name == "v2" or name.startswith("v2-"):
            if not zero: continue
        cfg = dict(SPLIT_K=base["SPLIT_K"] * 2) if extra == "x2" else dict(extra)
        out = wo.mma_swapped_triton(x, q, s, z, 4, 128, config=cfg)
        err = ((out.double() - ref).norm() / ref.norm()).item()
        us = bench_cold_us([lambda q=q, s=s, z=z: wo.mma_swapped_triton(x, q, s, z, 4, 128, config=cfg) for q, s, z in stores])
        row[name] = [round(us, 2), f"{err:.1e}"]
    print(json.dumps(row), flush=True)
    rows.append(row)
json.dump(rows, open(sys.argv[1], "w"), indent=1)
