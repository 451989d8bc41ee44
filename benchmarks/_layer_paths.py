"""What session 22's prepared experiments share: each times a few paths of the op on the seven 7B linears, each path on
cold copies of one linear's storage (`bench.dispatch.bench_cold_us`), summed over the layer, and keeps each path's
largest error against float64."""
from __future__ import annotations

from collections.abc import Callable

import torch

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
