"""Session 21: the one-pass dequantize kernel's tile on the H200. Past the swapped kernel's limit (int4: 128 tokens) a
weight-only linear dequantizes its whole weight and calls cuBLAS; at 256 tokens that pass took ~210 µs over the seven 7B
linears (session 20's dispatch: 101 MB read, 404 MB of bf16 written, ~2.4 TB/s), and QLoRA's backward runs it on every
linear. The launcher's tile (32 rows × one 128-column chunk, 4 warps) is from the H100. Each tile here: µs a call on
each 7B shape, weights read from memory (cold copies), against torch's copy of a bf16 tensor of the output's size
(reads and writes 2 bytes an element, the dequantize reads 0.5 and writes 2); the answer checked against the library's.

    python benchmarks/_exp_dequant_tiles.py out.json
"""
import json
import sys

import torch

from lowbit.bench.dispatch import KINDS, LAYER, bench_cold_us, cold_copies, storage
from lowbit.ops import weight_only as wo
from lowbit.ops.tiles import cdiv

gen = torch.Generator(device="cuda").manual_seed(0)
rows = []
for kind in ("int4", "int8", "table4"):
    bits, group, zero, dtype, lut_name = KINDS[kind]
    lut = wo.code_table(lut_name, torch.device("cuda")) if lut_name else None
    totals: dict[str, float] = {}
    for (k, n), count in LAYER.items():
        g = group or k
        stores = [storage(k, n, bits, g, zero, dtype, gen) for _ in range(cold_copies(n * k * (bits // 8 + 2)))]
        copies = [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) for _ in range(cold_copies(4 * n * k))]
        tw0 = wo.gemv_config(n, k, bits, g)["TW"]
        want = wo.dequantize_triton(*stores[0], bits, g, k, lut)
        row = {"kind": kind, "k": k, "n": n, "copy": round(bench_cold_us([lambda c=c: c.clone() for c in copies]), 2), "tiles": []}
        for bn in (8, 16, 32, 64, 128):
            for tw in {"int4": (64, 128), "int8": (64, 128, 256), "table4": (64,)}[kind]:
                for warps in (1, 2, 4, 8):
                    if not 4 <= bn * tw // (32 * warps) <= 64:  # 4-64 outputs a thread
                        continue
                    def call(st, bn=bn, tw=tw, warps=warps):
                        q, s, z = st
                        w = torch.empty(n, k, device="cuda", dtype=torch.bfloat16)
                        wo._dequant_kernel[(cdiv(n, bn), cdiv(k, tw))](
                            q, s, z if z is not None else q, lut if lut is not None else s, w, n, k, g,
                            q.stride(0), s.stride(0), z.stride(0) if z is not None else 0, w.stride(0),
                            BITS=bits, HAS_ZERO=z is not None, USE_LUT=lut is not None, BLOCK_N=bn, TW=tw, num_warps=warps)
                        return w
                    same = torch.equal(call(stores[0]), want)
                    us = bench_cold_us([lambda st=st: call(st) for st in stores])
                    name = f"{bn}x{tw} w{warps}"
                    row["tiles"].append([name, round(us, 2), same])
                    totals[name] = totals.get(name, 0.0) + count * us
        row["tiles"].sort(key=lambda t: t[1])
        lib = f"32x{tw0} w4"
        row["library's"] = next(t for t in row["tiles"] if t[0] == lib)
        print(json.dumps({**row, "tiles": row["tiles"][:3]}), flush=True)
        rows.append(row)
    best = min(totals.items(), key=lambda t: t[1])
    summary = {"kind": kind, "seven linears, library's tile": round(totals[f"32x{tw0} w4"], 1), "best tile": best[0], "its µs": round(best[1], 1)}
    print(json.dumps(summary), flush=True)
    rows.append(summary)
json.dump(rows, open(sys.argv[1], "w"), indent=1)
