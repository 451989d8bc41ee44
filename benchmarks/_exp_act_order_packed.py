"""Prepared in session 22 (not yet run): act-order on the swapped kernel with its gather composed with the packed codes'
K order. Act-order pays one gather of x anyway (`gather_columns`, by `perm`); gathering by perm[packed_x_order] instead
costs the same and lets the kernel take the packed codes on a contiguous x (X_ORDERED), which session 22's call 3 put
at 2-11 % of the int4 kernel's time at 16-128 tokens (the gather left out). The seven 7B linears, int4 g128 with zero
points in group order and a random permutation, µs as one CUDA graph of cold weights (the composed index made once,
as a layer would keep it), errors against float64 of x[:, perm] @ the dequantized weight.

    python benchmarks/_exp_act_order_packed.py out.json
"""
import json
import sys

import torch

from _layer_paths import add_errors, add_times, rounded
from lowbit.bench.dispatch import KINDS, LAYER, cold_copies, storage
from lowbit.ops import weight_only as wo

gen = torch.Generator(device="cuda").manual_seed(0)
bits, group, zero, dtype, _ = KINDS["int4"]
stores = {(k, n): [storage(k, n, bits, group, zero, dtype, gen) for _ in range(cold_copies(n * k * bits // 8))] for k, n in LAYER}
perms = {k: torch.randperm(k, device="cuda", generator=gen).to(torch.int32) for k in {k for k, _ in LAYER}}
rows = []
for m in (16, 32, 64, 128):
    row, err = {"m": m}, {}
    for (k, n), count in LAYER.items():
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        perm = perms[k]
        block_k = wo.swapped_config(m, n, k, bits, group)["BLOCK_K"]
        composed = perm[wo.packed_x_order(k, block_k, x.device).long()]
        q, s, z = stores[(k, n)][0]
        ref = x.double()[:, perm.long()] @ wo.dequantize_reference(q, s, z, bits, group, k, None, torch.float64).t()
        paths = {
            "now": lambda st: wo._weight_only_matmul(x, st[0], st[1], st[2], None, bits, group, None, None, perm),
            "composed": lambda st: wo.mma_swapped_triton(wo.gather_columns(x, composed), *st, bits, group, config=dict(X_ORDERED=True)),
            "no permutation": lambda st: wo._weight_only_matmul(x, st[0], st[1], st[2], None, bits, group, None, None, None),
        }
        add_times(row, paths, stores[(k, n)], count)
        add_errors(err, paths, (q, s, z), ref, ("now", "composed"))
    row = rounded(row, err)
    print(json.dumps(row), flush=True)
    rows.append(row)
json.dump(rows, open(sys.argv[1], "w"), indent=1)
