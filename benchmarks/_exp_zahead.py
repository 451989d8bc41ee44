"""Session 10, call 2 (one-off; a record: Z_AHEAD was reverted after it): the swapped kernel with the zero point loaded a step ahead (Z_AHEAD) against at once,
int4 g128 with zero points, 1-64 tokens, weights read from memory, µs a shape and the 7B layer's sum."""
import itertools, json, sys
import torch
from lowbit.ops import weight_only as wo
from sweep import SHAPES, bench_cold_us, cold_copies, storage, write

COUNT = {(4096, 4096): 4, (4096, 11008): 2, (11008, 4096): 1}
VARIANTS = {"now": {}, "z_ahead": dict(Z_AHEAD=True), "z_ahead-s4": dict(Z_AHEAD=True, num_stages=4), "now-s4": dict(num_stages=4)}
gen = torch.Generator(device="cuda").manual_seed(0)
rows, total = [], {}
for m, (k, n) in itertools.product((1, 4, 16, 32, 64), SHAPES):
    stores = [storage(k, n, 4, 128, True, None, gen) for _ in range(cold_copies(n * k // 2))]
    q, s, z = stores[0]
    x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    ref = x.double() @ wo.dequantize_reference(q, s, z, 4, 128, k, None, torch.float64).t()
    row = dict(k=k, n=n, m=m, default=wo.swapped_config(m, n, k, 4, 128))
    for name, cfg in VARIANTS.items():
        out = wo.mma_swapped_triton(x, q, s, z, 4, 128, config=cfg)
        err = ((out.double() - ref).norm() / ref.norm()).item()
        row[name] = [round(bench_cold_us([lambda q=q, s=s, z=z: wo.mma_swapped_triton(x, q, s, z, 4, 128, config=cfg) for q, s, z in stores]), 2), f"{err:.1e}"]
        total.setdefault(m, {}).setdefault(name, 0.0)
        total[m][name] = round(total[m][name] + COUNT[(k, n)] * row[name][0], 1)
    print(json.dumps(row), flush=True)
    rows.append(row)
print("layer sums, µs:", json.dumps(total))
write(sys.argv[1], dict(rows=rows, layer_sums_us=total))
