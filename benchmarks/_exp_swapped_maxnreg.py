"""Session 23 (prepared): the swapped kernel with its registers capped (Triton's `maxnreg`) for more programs an SM.
ncu at 64 tokens (session 23, call 4; int4 g128, 4096 → 11008): 168 registers hold it to 3 programs (12 warps) an SM,
the warps wait 6.3 cycles between instructions with the stalls spread over barriers, global and shared loads, fixed
latencies and the MMA, and 0.6 of 2.5 warps a scheduler are eligible: more warps would hide more of it. Capped, ptxas
spills (sm_90, `benchmarks/sm90_asm.py`): 64-token tile, codes a byte at a time 168 → 128 registers with 31 spill
stores, loop 395 → 445 instructions; packed codes (x gathered into their order) 159 → 128, 14 spills, 267 → 297;
128-token tile 246 → 168 with 40-45 spills (loop 458 → 534 bytes, 333 → 388 packed). The seven 7B linears, µs as one
CUDA graph of cold weights, errors against float64 of the codes.

    python benchmarks/_exp_swapped_maxnreg.py out.json
"""
import sys

from _layer_paths import sweep
from lowbit.ops import weight_only as wo


def paths(x, k, kind, bits, group, lut):
    swapped = lambda st, cfg: wo.mma_swapped_triton(x, st[0], st[1], st[2], bits, group, lut, config=cfg)  # noqa: E731
    out = {"now": lambda st: swapped(st, None), "packed": lambda st: swapped(st, dict(XPERM=True))}
    for cap in (168, 128):
        out[f"maxnreg {cap}"] = lambda st, cap=cap: swapped(st, dict(maxnreg=cap))
        out[f"packed, maxnreg {cap}"] = lambda st, cap=cap: swapped(st, dict(XPERM=True, maxnreg=cap))
    return out


sweep(("int4", "table4"), (32, 64, 128), paths, sys.argv[1])
