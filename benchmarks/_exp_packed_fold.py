"""Session 23: the group scales folded into the packed codes by one packed product a pair (`_scaled_pairs`, sm_90
HMUL2: half an instruction a code), so that the swapped kernel's MMA sums into the accumulator and runs on while the
next step is dequantized. ncu on the unfolded kernel at 64 tokens (session 23, call 2: 4096 → 11008, 32.3 µs): DRAM
16 % and L2 34 % of peak, 12 warps an SM by registers, 6.3 cycles a warp between issues — it waits, neither memory nor
the L2 is full; in its TTGIR every step waits for its MMA (a `warp_group_dot_wait` of 0 pending). Folded in fp32 (session
21) the loop had ~1.5x the instructions and lost on int4; packed, the sm_90 SASS at 64 tokens has 267 → 382 loop
instructions, 159 → 127 registers, 7 of 8 MMAs in flight (K-steps of 64: 193 → 222, 122 → 94 registers). The packed
codes need x in their K order: XPERM gathers it. The seven 7B linears, µs as one CUDA graph of cold weights, errors
against float64 of the codes.

    python benchmarks/_exp_packed_fold.py out.json
"""
import sys

import torch.nn.functional as F

from _layer_paths import sweep
from lowbit.ops import weight_only as wo


def paths(x, k, kind, bits, group, lut):
    swapped = lambda st, cfg: wo.mma_swapped_triton(x, st[0], st[1], st[2], bits, group, lut, config=cfg)  # noqa: E731
    out = {
        "now": lambda st: wo._weight_only_matmul(x, st[0], st[1], st[2], None, bits, group, lut, None),
        "packed": lambda st: swapped(st, dict(XPERM=True, FOLD=False)),
        "packed, folded": lambda st: swapped(st, dict(XPERM=True, FOLD=True)),
        "folded in fp32": lambda st: swapped(st, dict(XPERM=False, FOLD=True, PACKED=False)),
        "packed, folded, K-step 64": lambda st: swapped(st, dict(XPERM=True, FOLD=True, BLOCK_K=64)),
        "packed, folded, 64-token tile": lambda st: swapped(st, dict(XPERM=True, FOLD=True, BLOCK_M=64)),
        "dequantize + cuBLAS": lambda st: F.linear(x, wo.dequantize_triton(st[0], st[1], st[2], bits, group, k, lut, x.dtype)),
    }
    if x.shape[0] <= 64:
        del out["packed, folded, 64-token tile"]
    if kind == "table4":  # (NF4's groups of 64 are K-steps of 64 already)
        del out["packed, folded, K-step 64"]
    return out


sweep(("int4", "table4"), (16, 64, 128, 256), paths, sys.argv[1], ("now", "packed", "packed, folded", "folded in fp32"))
