"""Session 23: the group scales folded into the packed codes by one packed product a pair (`_scaled_pairs`, sm_90
HMUL2: half an instruction a code), so that the swapped kernel's MMA sums into the accumulator and runs on while the
next step is dequantized. ncu on the unfolded kernel at 64 tokens (session 23, call 2: 4096 → 11008, 32.3 µs): DRAM
16 % and L2 34 % of peak, 12 warps an SM by registers, 6.3 cycles a warp between issues — it waits, neither memory nor
the L2 is full; in its TTGIR every step waits for its MMA (a `warp_group_dot_wait` of 0 pending). Folded in fp32 (session
21) the loop had ~1.5x the instructions and lost on int4; packed, the sm_90 SASS at 64 tokens has 267 → 382 loop
instructions, 159 → 127 registers, 7 of 8 MMAs in flight (K-steps of 64: 193 → 222, 122 → 94 registers). The packed codes need x in their K order: XPERM gathers it.
The seven 7B linears, µs as one CUDA graph of cold weights, errors against float64 of the codes.

    python benchmarks/_exp_packed_fold.py out.json
"""
import json
import sys

import torch
import torch.nn.functional as F

from _layer_paths import add_errors, add_times, layer_storage, rounded
from lowbit.bench.dispatch import LAYER
from lowbit.ops import weight_only as wo

gen = torch.Generator(device="cuda").manual_seed(0)
rows = []
for kind in ("int4", "table4"):
    bits, group, lut, stores, floats = layer_storage(kind, gen)
    for m in (16, 64, 128, 256):
        row, err = {"kind": kind, "m": m}, {}
        for (k, n), count in LAYER.items():
            x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
            q, s, z = stores[(k, n)][0]
            ref = x.double() @ wo.dequantize_reference(q, s, z, bits, group, k, lut, torch.float64).t()
            add_times(row, {"bf16": lambda st: F.linear(x, st[0])}, floats[(k, n)], count)
            swapped = lambda st, cfg: wo.mma_swapped_triton(x, st[0], st[1], st[2], bits, group, lut, config=cfg)  # noqa: E731
            paths = {
                "now": lambda st: wo._weight_only_matmul(x, st[0], st[1], st[2], None, bits, group, lut, None),
                "packed": lambda st: swapped(st, dict(XPERM=True, FOLD=False)),
                "packed, folded": lambda st: swapped(st, dict(XPERM=True, FOLD=True)),
                "folded in fp32": lambda st: swapped(st, dict(XPERM=False, FOLD=True, PACKED=False)),
                "packed, folded, K-step 64": lambda st: swapped(st, dict(XPERM=True, FOLD=True, BLOCK_K=64)),
                "packed, folded, 64-token tile": lambda st: swapped(st, dict(XPERM=True, FOLD=True, BLOCK_M=64)),
                "dequantize + cuBLAS": lambda st: F.linear(x, wo.dequantize_triton(st[0], st[1], st[2], bits, group, k, lut)),
            }
            if m <= 64:
                del paths["packed, folded, 64-token tile"]
            if kind == "table4":  # (NF4's groups of 64 are K-steps of 64 already)
                del paths["packed, folded, K-step 64"]
            add_times(row, paths, stores[(k, n)], count)
            add_errors(err, paths, (q, s, z), ref, ("now", "packed", "packed, folded", "folded in fp32"))
        row = rounded(row, err)
        print(json.dumps(row), flush=True)
        rows.append(row)
json.dump(rows, open(sys.argv[1], "w"), indent=1)
