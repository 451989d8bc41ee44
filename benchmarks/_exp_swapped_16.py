"""Session 20 (prepared; run in session 21, call 1, at commit 1c11783: `TOKENS_FIRST` existed only there, both ideas lost
and were reverted): 16-token tiles in the swapped MMA kernel past 16 tokens. The kernel takes 4-bit
codes two at a time (`_packed_codes`, `_packed_table`) on 16-token tiles only; past 16 tokens the heuristic's taller
tiles (32 / 64) take them one at a time, and the dispatch then loses to bf16 from ~32 tokens (int4 0.69x at 64, NF4
0.63x). No sweep tried 16-token tiles there: each token tile dequantizes the weight again, but the weight (8-23 MB a
linear) may stay in the L2 between them. The seven 7B linears at 32 / 64 / 128 tokens per storage kind, µs as one
CUDA graph of cold weights (`bench.dispatch`'s storage and timing), the heuristic's tile against 16-token tiles with
its K split, each one's error against float64.

    python benchmarks/_exp_swapped_16.py out.json
"""
import json
import sys

import torch
import torch.nn.functional as F

from lowbit.bench.dispatch import KINDS, LAYER, bench_cold_us, cold_copies, storage
from lowbit.ops import weight_only as wo

gen = torch.Generator(device="cuda").manual_seed(0)
rows = []
for kind in ("int4", "table4", "int8"):
    bits, group, zero, dtype, lut_name = KINDS[kind]
    lut = wo.code_table(lut_name, torch.device("cuda")) if lut_name else None
    stores = {(k, n): [storage(k, n, bits, group or k, zero, dtype, gen) for _ in range(cold_copies(n * k * bits // 8))] for k, n in LAYER}
    floats = {(k, n): [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) for _ in range(cold_copies(2 * n * k))] for k, n in LAYER}
    for m in (32, 64, 128):
        row = {"kind": kind, "m": m, "bf16": 0.0, "heuristic": 0.0, "16-token tiles": 0.0, "16-token tiles, split 1": 0.0}
        err = 0.0
        for (k, n), count in LAYER.items():
            g = group or k
            x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
            short = dict(BLOCK_M=16, **({"BLOCK_N": 128} if n >= 8192 else {}))
            configs = {"heuristic": None, "16-token tiles": short, "16-token tiles, split 1": dict(short, SPLIT_K=1)}
            row["bf16"] += count * bench_cold_us([lambda w=w: F.linear(x, w) for w in floats[(k, n)]])
            q, s, z = stores[(k, n)][0]
            ref = x.double() @ wo.dequantize_reference(q, s, z, bits, g, k, lut, torch.float64).t()
            for name, cfg in configs.items():
                call = lambda st, cfg=cfg: wo.mma_swapped_triton(x, st[0], st[1], st[2], bits, g, lut, config=cfg)  # noqa: E731
                row[name] += count * bench_cold_us([lambda st=st: call(st) for st in stores[(k, n)]])
                err = max(err, ((call((q, s, z)).double() - ref).norm() / ref.norm()).item())
        row = {key: round(v, 1) if isinstance(v, float) else v for key, v in row.items()}
        row["max error"] = f"{err:.1e}"
        print(json.dumps(row), flush=True)
        rows.append(row)
json.dump(rows, open(sys.argv[1], "w"), indent=1)
