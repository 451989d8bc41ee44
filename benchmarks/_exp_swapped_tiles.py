"""Session 21: the swapped MMA kernel's tiles at 32-256 tokens on the H200. The tiles there come from the H100's sweep
(64 weight rows a tile, 4 warps); at 64 tokens a 64-row tile reads all of x (16 KB a K-step from the L2) for 4 KB of
codes, and the dispatch is at 0.67x bf16 (int4, session 21 call 1). Wider weight tiles (128 / 256 rows, 4 or 8 warps)
read x once for more rows. The seven 7B linears per storage kind, each shape on every tile (K split: the heuristic's
count for that tile, half and double), µs as one CUDA graph of cold weights (`bench.dispatch`), errors against float64.
Prints, per kind and token count: bf16, the heuristic, the best tile of each shape and the one best tile for all.

    python benchmarks/_exp_swapped_tiles.py out.json [budget_s]
"""
import itertools
import json
import sys
import time

import torch
import torch.nn.functional as F

from lowbit.bench.dispatch import KINDS, LAYER, bench_cold_us, cold_copies, storage
from lowbit.ops import weight_only as wo
from lowbit.ops.tiles import cdiv, next_power_of_2

budget = float(sys.argv[2]) if len(sys.argv) > 2 else 420.0
start = time.time()
gen = torch.Generator(device="cuda").manual_seed(0)


def tiles(m: int, n: int, k: int, bk: int) -> list[dict]:
    block_m = max(16, min(128 if m >= 128 else 64, next_power_of_2(m)))
    out = []
    # call 2 (the script at commit 1ed17d8): rows/warps (64, 4), (128, 4), (128, 8), (256, 8) × stages 3, 4; 64 rows on 4
    # warps won every shape, 3 stages most. Call 4 (after the heuristic took those): 64 rows, 2 or 3 stages, K-steps of
    # bk and bk / 2
    for (bn, warps, kstep), stages in itertools.product(((64, 4, bk), (64, 4, bk // 2)), (2, 3)):
        if kstep < 16:
            continue
        bk_ = kstep
        s0 = min(8, next_power_of_2(cdiv(256, cdiv(n, bn) * cdiv(m, block_m))), cdiv(k, bk_))
        for rule, split in (("half", max(1, s0 // 2)), ("rule", s0), ("double", min(16, 2 * s0))):
            out.append((f"{block_m}x{bn}x{bk_} w{warps} s{stages}, split: {rule}",
                        dict(BLOCK_M=block_m, BLOCK_N=bn, BLOCK_K=bk_, SPLIT_K=split, num_warps=warps, num_stages=stages)))
    return out


rows = []
for kind, ms in (("int4", (32, 64, 128, 256)), ("int8", (64, 128, 256)), ("table4", (32, 64, 128))):
    bits, group, zero, dtype, lut_name = KINDS[kind]
    lut = wo.code_table(lut_name, torch.device("cuda")) if lut_name else None
    stores = {(k, n): [storage(k, n, bits, group or k, zero, dtype, gen) for _ in range(cold_copies(n * k * bits // 8))] for k, n in LAYER}
    floats = {(k, n): [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) for _ in range(cold_copies(2 * n * k))] for k, n in LAYER}
    for m in ms:
        if time.time() - start > budget:
            print(json.dumps({"kind": kind, "m": m, "skipped": "budget"}), flush=True)
            continue
        row = {"kind": kind, "m": m, "bf16": 0.0, "heuristic": 0.0, "best per shape": 0.0, "shapes": {}}
        uniform: dict[str, float] = {}
        err = 0.0
        for (k, n), count in LAYER.items():
            g = group or k
            x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
            q, s, z = stores[(k, n)][0]
            ref = x.double() @ wo.dequantize_reference(q, s, z, bits, g, k, lut, torch.float64).t()
            row["bf16"] += count * bench_cold_us([lambda w=w: F.linear(x, w) for w in floats[(k, n)]])
            heur = wo.swapped_config(m, n, k, bits, g)
            timed = []
            for name, cfg in [("heuristic", heur)] + tiles(m, n, k, heur["BLOCK_K"]):
                call = lambda st, cfg=cfg: wo.mma_swapped_triton(x, st[0], st[1], st[2], bits, g, lut, config=cfg)  # noqa: E731
                try:
                    us = bench_cold_us([lambda st=st: call(st) for st in stores[(k, n)]])
                    err = max(err, ((call((q, s, z)).double() - ref).norm() / ref.norm()).item())
                except Exception as e:  # noqa: BLE001 - a tile the compiler refuses (shared memory) is a data point
                    us = float("inf")
                    print(f"  {kind} {m} {k}x{n} {cfg}: {type(e).__name__}: {str(e)[:100]}", flush=True)
                timed.append((us, cfg, name))
            row["heuristic"] += count * timed[0][0]
            best = min(timed, key=lambda t: t[0])[:2]
            row["best per shape"] += count * best[0]
            row["shapes"][f"{k}x{n}"] = {"heuristic": round(timed[0][0], 2), "best": round(best[0], 2), "tile": best[1]}
            for us, _, name in timed[1:]:  # one tile for all shapes, its K split by the same rule on each
                uniform[name] = uniform.get(name, 0.0) + count * us
        # (call 2 keyed this by the tile with its K split, which differs between shapes, and summed a tile over only the
        # shapes it was tried on: its "best one tile" was wrong)
        name, us = min(uniform.items(), key=lambda t: t[1])
        row.update({"best one tile": round(us, 1), "that tile": name, "max error": f"{err:.1e}"})
        row = {a: round(b, 1) if isinstance(b, float) else b for a, b in row.items()}
        print(json.dumps(row), flush=True)
        rows.append(row)
json.dump(rows, open(sys.argv[1], "w"), indent=1)
