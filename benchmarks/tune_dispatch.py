"""Time every path of the weight-only op on the linears of one Llama-2-7B decoder layer (4 × 4096→4096,
2 × 4096→11008, 11008→4096) at 1-512 tokens, per storage kind, against bf16 cuBLAS, and derive the
dispatch limits: how many tokens each path, in the dispatch order, still wins at. `--write` puts them
into the package's DISPATCH_FILE under this GPU's name, which `weight_only_matmul` then reads.

    PYTHONPATH=src python benchmarks/tune_dispatch.py --out dispatch-sweep.json [--write] [--budget-s 150]
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import time

import torch
import torch.nn.functional as F
import triton

from lowbit.ops import weight_only as wo
from sweep import bench_cold_us, cold_copies, storage, write  # benchmarks/, on the path when run as a script

# kind: (bits, group or None for one scale a row, zero points, values dtype or None for codes, table); as
# bench linear quantizes W4A16 g128, W8A16 per channel, FP8 weight-only and NF4 b64
KINDS = {"int4": (4, 128, True, None, None), "int8": (8, None, False, None, None),
         "fp8": (8, None, False, torch.float8_e4m3fn, None), "table4": (4, 64, False, None, "nf4")}
LAYER = collections.Counter([(4096, 4096)] * 4 + [(4096, 11008)] * 2 + [(11008, 4096)])  # (K, N): count
ORDER = ("words", "gemv", "swapped", "dequant")  # the dispatch order
MS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


def paths(kind: str, m: int, x, q, s, z, bits: int, g: int, lut) -> dict:
    """The paths the op can take for this storage at m tokens, each as a call."""
    k = x.shape[1]
    out = {}
    if m <= 8 and wo.words_config(q.shape[0], k, bits, g, z is not None):
        out["words"] = lambda: wo.gemv_words_triton(x, q, s, z, bits, g, lut)
    if lut is not None and m <= 8:
        out["gemv"] = lambda: wo.gemv_triton(x, q, s, z, bits, g, lut)
    out["swapped"] = lambda: wo.mma_swapped_triton(x, q, s, z, bits, g, lut)
    dq, dlut = (q.view(torch.uint8), wo.code_table("e4m3", x.device)) if kind == "fp8" else (q, lut)
    out["dequant"] = lambda: F.linear(x, wo.dequantize_triton(dq, s, z, bits, g, k, dlut, x.dtype))
    return out


def limits_from(winners: dict[int, str]) -> dict[str, int]:
    """Each path's limit from the fastest path at each measured m: walking up in m, a winner later in the
    dispatch order moves the dispatch on; an earlier one winning again (noise, or a dip) does not move it
    back. A path that never wins gets 0: never taken."""
    limits, stage = dict.fromkeys(ORDER[:-1], 0), 0
    for m in sorted(winners):
        i = ORDER.index(winners[m])
        if i >= stage:
            stage = i
            if winners[m] != "dequant":
                limits[winners[m]] = m
    return limits


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--write", action="store_true", help="write the limits into the package's DISPATCH_FILE for this GPU")
    ap.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    ap.add_argument("--budget-s", type=float, default=150)
    args = ap.parse_args()
    t0 = time.time()
    gen = torch.Generator(device="cuda").manual_seed(0)
    rows, limits = [], {}
    for kind in args.kinds:
        bits, group, zero, dtype, table = KINDS[kind]
        lut = wo.code_table(table, torch.device("cuda")) if table else None
        # copies of each weight, cycled through so that the timings read memory, not the L2 (sweep.cold_copies)
        stores = {(k, n): [storage(k, n, bits, group or k, zero, dtype, gen) for _ in range(cold_copies(n * k * bits // 8))]
                  for k, n in LAYER}
        exact = {(k, n): wo.dequantize_reference(*stores[(k, n)][0], bits, group or k, k, lut, torch.float64) for k, n in LAYER}
        floats = {(k, n): [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) for _ in range(cold_copies(2 * n * k))]
                  for k, n in LAYER}
        winners = {}
        for m in MS:
            if time.time() - t0 > args.budget_s:
                break
            layer_us = collections.Counter()
            for (k, n), count in LAYER.items():
                g = group or k
                x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
                ref = x.double() @ exact[(k, n)].t()
                layer_us["bf16"] += count * bench_cold_us([lambda w=w: F.linear(x, w) for w in floats[(k, n)]])
                copies = [paths(kind, m, x, q, s, z, bits, g, lut) for q, s, z in stores[(k, n)]]
                for name, fn in copies[0].items():
                    err = ((fn().double() - ref).norm() / ref.norm()).item()
                    if not err < 2e-2:  # a wrong path never wins (NaN fails too)
                        raise AssertionError(f"{kind} {name} m={m} K={k} N={n}: relative error {err}")
                    layer_us[name] += count * bench_cold_us([c[name] for c in copies])
            best = min((p for p in layer_us if p != "bf16"), key=layer_us.__getitem__)
            winners[m] = best
            row = dict(kind=kind, m=m, best=best, us={p: round(v, 2) for p, v in layer_us.items()},
                       speedup_vs_bf16=round(layer_us["bf16"] / layer_us[best], 3))
            rows.append(row)
            print(json.dumps(row), flush=True)
            write(args.out, rows)
        if len(winners) == len(MS):  # a kind the budget cut short keeps the limits it had
            limits[kind] = limits_from(winners)
            print(kind, "limits", limits[kind], flush=True)
    write(args.out, rows + [dict(limits=limits)])
    if args.write and limits:
        table_file = wo.DISPATCH_FILE
        tables = json.loads(table_file.read_text()) if table_file.exists() else {}
        entry = tables.get(torch.cuda.get_device_name(), {})
        tables[torch.cuda.get_device_name()] = dict(  # the kinds measured now over those measured before
            limits={**entry.get("limits", {}), **limits}, source="benchmarks/tune_dispatch.py", torch=torch.__version__,
            triton=triton.__version__, date=datetime.date.today().isoformat())
        table_file.write_text(json.dumps(tables, indent=1, sort_keys=True) + "\n")
        print("wrote", table_file, flush=True)


if __name__ == "__main__":
    main()
