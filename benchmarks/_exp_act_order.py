"""Session 20 (one-off): GPTQ act-order storage on the seven 7B linears, before and after the group-order layout.
Before: codes in input-column order with g_idx, which only the W4A16 MMA kernel (`ops.w4a16`) took, at every token
count. After: the layer's codes sorted by group (`perm`), x gathered, then the group-wise kernels by the dispatch. The
same codes both ways; bf16 cuBLAS beside; µs a layer as one CUDA graph, weights read from memory (cold copies).

    python benchmarks/_exp_act_order.py out.json
"""
import json
import sys

import torch
import torch.nn.functional as F

from lowbit.bench.dispatch import bench_cold_us, cold_copies
from lowbit.bench.linear import LLAMA2_7B_LINEARS, ActOrderGPTQ
from lowbit.formats.packing import pack
from lowbit.layers.int_weight import _to_unsigned
from lowbit.ops.w4a16 import w4a16_matmul

torch.manual_seed(0)
layers, olds, floats = {}, {}, {}
for name, k, n in LLAMA2_7B_LINEARS:
    if (k, n) in layers:
        continue
    w = torch.randn(n, k, device="cuda") * 0.02
    copies = cold_copies(n * k // 2)
    layers[(k, n)] = [ActOrderGPTQ().layer(w, None) for _ in range(copies)]
    olds[(k, n)] = [(pack(_to_unsigned(lay.codes(), 4, False), 4), lay.scale, lay.zero, lay.g_idx) for lay in layers[(k, n)]]
    floats[(k, n)] = [w.bfloat16().clone() for _ in range(cold_copies(2 * n * k))]
count = {}
for _, k, n in LLAMA2_7B_LINEARS:
    count[(k, n)] = count.get((k, n), 0) + 1
rows = []
for m in (1, 16, 256):
    row = {"m": m, "bf16": 0.0, "g_idx (before)": 0.0, "group order (after)": 0.0}
    err = 0.0
    for (k, n), c in count.items():
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        row["bf16"] += c * bench_cold_us([lambda w=w: F.linear(x, w) for w in floats[(k, n)]])
        row["g_idx (before)"] += c * bench_cold_us([lambda o=o: w4a16_matmul(x, *o, 128, None) for o in olds[(k, n)]])
        row["group order (after)"] += c * bench_cold_us([lambda lay=lay: lay(x) for lay in layers[(k, n)]])
        lay = layers[(k, n)][0]
        ref = x.double() @ lay.dequantize_weight(torch.float64).t()
        for out in (lay(x), w4a16_matmul(x, *olds[(k, n)][0], 128, None)):
            err = max(err, ((out.double() - ref).norm() / ref.norm()).item())
    row = {key: round(v, 1) if isinstance(v, float) else v for key, v in row.items()}
    row["max error"] = f"{err:.1e}"
    print(json.dumps(row), flush=True)
    rows.append(row)
json.dump(rows, open(sys.argv[1], "w"), indent=1)
