"""Prepared in session 22 (not yet run): the word GEMV with its scales' and zero points' rows as constant offsets from the
tile's first row (`ROW_OFFSETS`; sm_90 loop instructions, int4 g128 with zero points: 467 → 435 on 4096 → 11008, 467 →
432 on 4096², 473 → 434 on 11008 → 4096, at 48-56 → 48-64 registers). The seven 7B linears at 1-2 tokens, µs as one
CUDA graph of cold weights (`bench.dispatch`), off and on, and whether the outputs are bit-equal.

    python benchmarks/_exp_words_row_offsets.py out.json
"""
import json
import sys

import torch

from _layer_paths import add_times, rounded
from lowbit.bench.dispatch import KINDS, LAYER, cold_copies, storage
from lowbit.ops import weight_only as wo

gen = torch.Generator(device="cuda").manual_seed(0)
rows = []
for kind in ("int4", "table4", "int8"):
    bits, group, zero, dtype, lut_name = KINDS[kind]
    group = group or None
    lut = wo.code_table(lut_name, torch.device("cuda")) if lut_name else None
    stores = {(k, n): [storage(k, n, bits, group or k, zero, dtype, gen) for _ in range(cold_copies(n * k * bits // 8))] for k, n in LAYER}
    for m in (1, 2):
        row, equal = {"kind": kind, "m": m}, True
        for (k, n), count in LAYER.items():
            x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
            g = group or k
            paths = {name: lambda st, cfg=cfg: wo.gemv_words_triton(x, *st, bits, g, lut, config=cfg)
                     for name, cfg in (("off", None), ("on", dict(ROW_OFFSETS=True)))}
            add_times(row, paths, stores[(k, n)], count)
            st = stores[(k, n)][0]
            equal &= torch.equal(wo.gemv_words_triton(x, *st, bits, g, lut), wo.gemv_words_triton(x, *st, bits, g, lut, config=dict(ROW_OFFSETS=True)))
        row = rounded(row, {})
        row["bit-equal"] = equal
        print(json.dumps(row), flush=True)
        rows.append(row)
json.dump(rows, open(sys.argv[1], "w"), indent=1)
