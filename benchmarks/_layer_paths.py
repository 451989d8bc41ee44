"""What session 22's prepared experiments share: each times a few paths of the op on the seven 7B linears, each path on
cold copies of one linear's storage (`bench.dispatch.bench_cold_us`), summed over the layer, and keeps each path's
largest error against float64."""
from __future__ import annotations

from collections.abc import Callable

import torch

from lowbit.bench.dispatch import bench_cold_us


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
