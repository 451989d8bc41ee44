"""Session 21 (prepared; run in session 22, with the word GEMV at one token beside it): the swapped kernel with the group scales folded into the codes' values (`FOLD`).
Unfolded, each K-step's MMA product is scaled at once, so every step waits for its MMA (sm_90 TTGIR: one
`warp_group_dot_wait` of 0 a step); folded, (c − z)·s is rounded to x's dtype (as the dequantize path's weight is)
and the MMA sums into the accumulator, so it can run while the next step is dequantized, at ~1.5x the loop's
instructions on int4 (sm_90 SASS). The seven 7B linears at 1-256 tokens, int4 g128 and NF4 b64, µs as one CUDA graph
of cold weights (`bench.dispatch`), the heuristic's tile with and without FOLD, errors against float64 of the codes.

    python benchmarks/_exp_swapped_fold.py out.json
"""
import json
import sys

import torch
import torch.nn.functional as F

from lowbit.bench.dispatch import KINDS, LAYER, bench_cold_us, cold_copies, storage
from lowbit.ops import weight_only as wo

gen = torch.Generator(device="cuda").manual_seed(0)
rows = []
for kind in ("int4", "table4"):
    bits, group, zero, dtype, lut_name = KINDS[kind]
    lut = wo.code_table(lut_name, torch.device("cuda")) if lut_name else None
    stores = {(k, n): [storage(k, n, bits, group, zero, dtype, gen) for _ in range(cold_copies(n * k * bits // 8))] for k, n in LAYER}
    floats = {(k, n): [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) for _ in range(cold_copies(2 * n * k))] for k, n in LAYER}
    for m in (1, 2, 16, 32, 64, 128, 256):
        row = {"kind": kind, "m": m, "bf16": 0.0, "unfolded": 0.0, "folded": 0.0}
        errs = {"unfolded": 0.0, "folded": 0.0}
        for (k, n), count in LAYER.items():
            x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
            q, s, z = stores[(k, n)][0]
            ref = x.double() @ wo.dequantize_reference(q, s, z, bits, group, k, lut, torch.float64).t()
            row["bf16"] += count * bench_cold_us([lambda w=w: F.linear(x, w) for w in floats[(k, n)]])
            if m <= 2:  # the word GEMV, which the dispatch runs at these token counts, for context
                row["words"] = row.get("words", 0.0) + count * bench_cold_us(
                    [lambda st=st: wo.gemv_words_triton(x, st[0], st[1], st[2], bits, group, lut) for st in stores[(k, n)]])
            for name, cfg in (("unfolded", None), ("folded", dict(FOLD=True))):
                call = lambda st, cfg=cfg: wo.mma_swapped_triton(x, st[0], st[1], st[2], bits, group, lut, config=cfg)  # noqa: E731
                row[name] += count * bench_cold_us([lambda st=st: call(st) for st in stores[(k, n)]])
                errs[name] = max(errs[name], ((call((q, s, z)).double() - ref).norm() / ref.norm()).item())
        row = {a: round(b, 1) if isinstance(b, float) else b for a, b in row.items()}
        row["errors"] = {a: f"{b:.1e}" for a, b in errs.items()}
        print(json.dumps(row), flush=True)
        rows.append(row)
json.dump(rows, open(sys.argv[1], "w"), indent=1)
