"""Session 9, call 6 (one-off): at 32-128 tokens, the swapped kernel's default tile against 16-token tiles (each
m-tile reads the weight again, from the L2 after the first; 16-token tiles take the packed codes), int4 g128
with zero points on weights read from memory, µs a shape and the seven 7B linears' sum."""
import itertools, json, sys
import torch
import torch.nn.functional as F
from lowbit.ops import weight_only as wo
from sweep import SHAPES, bench_cold_us, cold_copies, storage

COUNT = {(4096, 4096): 4, (4096, 11008): 2, (11008, 4096): 1}
VARIANTS = {"default": {}, "bm16": dict(BLOCK_M=16, num_stages=3), "bm16-bn128": dict(BLOCK_M=16, BLOCK_N=128, num_stages=3),
            "bm16-split1": dict(BLOCK_M=16, num_stages=3, SPLIT_K=1), "bm32-packed-off": dict(BLOCK_M=32)}
gen = torch.Generator(device="cuda").manual_seed(0)
rows, total = [], {}
for (k, n), m in itertools.product(SHAPES, (32, 64, 128)):
    stores = [storage(k, n, 4, 128, True, None, gen) for _ in range(cold_copies(n * k // 2))]
    q, s, z = stores[0]
    x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    ref = x.double() @ wo.dequantize_reference(q, s, z, 4, 128, k, None, torch.float64).t()
    ws = [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) for _ in range(cold_copies(2 * n * k))]
    row = dict(k=k, n=n, m=m, default_cfg=wo.swapped_config(m, n, k, 4, 128), bf16=round(bench_cold_us([lambda w=w: F.linear(x, w) for w in ws]), 2))
    for name, cfg in VARIANTS.items():
        out = wo.mma_swapped_triton(x, q, s, z, 4, 128, config=cfg)
        err = ((out.double() - ref).norm() / ref.norm()).item()
        row[name] = [round(bench_cold_us([lambda q=q, s=s, z=z: wo.mma_swapped_triton(x, q, s, z, 4, 128, config=cfg) for q, s, z in stores]), 2), f"{err:.1e}"]
    for name in ["bf16", *VARIANTS]:
        v = row[name] if name == "bf16" else row[name][0]
        total.setdefault(m, {}).setdefault(name, 0.0)
        total[m][name] = round(total[m][name] + COUNT[(k, n)] * v, 1)
    print(json.dumps(row), flush=True)
    rows.append(row)
print("layer sums, µs:", json.dumps(total))
json.dump(dict(rows=rows, layer_sums_us=total), open(sys.argv[1], "w"), indent=1)
