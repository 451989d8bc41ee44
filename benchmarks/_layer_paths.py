"""What session 22's prepared experiments share: each times a few paths of the op on the seven 7B linears, each path on
cold copies of one linear's storage (`bench.dispatch.bench_cold_us`), summed over the layer, and keeps each path's
largest error against float64."""
from __future__ import annotations

import json
from collections.abc import Callable

import torch
import torch.nn.functional as F

from lowbit.bench.dispatch import KINDS, LAYER, bench_cold_us, cold_copies, storage
from lowbit.ops import weight_only as wo


def layer_storage(kind: str, gen: torch.Generator) -> tuple:
    """(bits, group, lut, stores, floats) for a storage kind of `bench.dispatch.KINDS`: each 7B linear's cold copies of
    random storage, and of bf16 weights (as 1-tuples, for `add_times`)."""
    bits, group, zero, dtype, lut_name = KINDS[kind]
    lut = wo.code_table(lut_name, torch.device("cuda")) if lut_name else None
    stores = {(k, n): [storage(k, n, bits, group, zero, dtype, gen) for _ in range(cold_copies(n * k * bits // 8))] for k, n in LAYER}
    floats = {(k, n): [(torch.randn(n, k, device="cuda", dtype=torch.bfloat16),) for _ in range(cold_copies(2 * n * k))] for k, n in LAYER}
    return bits, group, lut, stores, floats


def add_times(row: dict, paths: dict[str, Callable], copies: list, count: int) -> None:
    """row[name] += count × µs of paths[name](storage), over the cold copies of one linear's storage."""
    for name, call in paths.items():
        row[name] = row.get(name, 0.0) + count * bench_cold_us([lambda st=st, call=call: call(st) for st in copies])


def add_errors(err: dict, paths: dict[str, Callable], storage, ref: torch.Tensor, names=None) -> None:
    """err[name] = the largest ‖out − ref‖ / ‖ref‖ so far of paths[name](storage), for `names` (default: all)."""
    for name in names or paths:
        out = paths[name](storage).double()
        err[name] = max(err.get(name, 0.0), ((out - ref).norm() / ref.norm()).item())


def rounded(row: dict, err: dict) -> dict:
    """The row with µs to 0.1 and the errors as strings."""
    out = {a: round(b, 1) if isinstance(b, float) else b for a, b in row.items()}
    if err:
        out["errors"] = {a: f"{b:.1e}" for a, b in err.items()}
    return out


def sweep(kinds, ms, make_paths: Callable, out: str, error_names=None) -> list[dict]:
    """For each storage kind and token count, the seven linears: bf16 and the paths make_paths(x, k, kind, bits, group,
    lut) gives (name → a call on one storage) timed and summed (`add_times`), each path's largest error against float64
    of the codes kept (those in `error_names`; default all); a JSON line a row, all rows into `out`."""
    gen = torch.Generator(device="cuda").manual_seed(0)
    rows = []
    for kind in kinds:
        bits, group, lut, stores, floats = layer_storage(kind, gen)
        for m in ms:
            row, err = {"kind": kind, "m": m}, {}
            for (k, n), count in LAYER.items():
                x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
                q, s, z = stores[(k, n)][0]
                ref = x.double() @ wo.dequantize_reference(q, s, z, bits, group, k, lut, torch.float64).t()
                add_times(row, {"bf16": lambda st: F.linear(x, st[0])}, floats[(k, n)], count)
                paths = make_paths(x, k, kind, bits, group, lut)
                add_times(row, paths, stores[(k, n)], count)
                add_errors(err, paths, (q, s, z), ref, [a for a in paths if error_names is None or a in error_names])
            row = rounded(row, err)
            print(json.dumps(row), flush=True)
            rows.append(row)
    json.dump(rows, open(out, "w"), indent=1)
    return rows
