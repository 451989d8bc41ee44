"""`lowbit bench dispatch`: measure, on this GPU, how many tokens each weight-only path still wins at, and optionally
write those limits where `lowbit.ops.weight_only` reads them.

The weight-only op takes, in order, the word GEMV, the byte GEMV (code tables), the swapped MMA kernel, then
dequantize + cuBLAS, each up to a token count measured per GPU. A GPU without an entry takes the H100's limits, which
lose somewhere on any other GPU (the H200 moves bf16 ~1.4x faster at the same arithmetic rate). This bench times every
path on the linears of one Llama-2-7B decoder layer (4 × 4096→4096, 2 × 4096→11008, 11008→4096) at 1-512 tokens per
storage kind, against bf16 cuBLAS, weights read from memory (copies cycled past the L2), each path's answer checked
against float64 first. `--write` puts the limits into the user's dispatch file (`ops.weight_only.user_dispatch_file`),
which overrides the package's entries for this GPU.
"""

from __future__ import annotations

import collections
import datetime
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ..formats.packing import pack
from ..measure import environment
from ..ops import weight_only as wo
from ..ops.tiles import cdiv
from . import report

# kind: (bits, group or None for one scale a row, zero points, values dtype or None for codes, table); as bench linear
# quantizes W4A16 g128, W8A16 per channel, FP8 weight-only and NF4 b64
KINDS = {"int4": (4, 128, True, None, None), "int8": (8, None, False, None, None),
         "fp8": (8, None, False, torch.float8_e4m3fn, None), "table4": (4, 64, False, None, "nf4")}
LAYER = collections.Counter([(4096, 4096)] * 4 + [(4096, 11008)] * 2 + [(11008, 4096)])  # (K, N): count
ORDER = ("words", "gemv", "swapped", "dequant")  # the dispatch order
MS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


def bench_us(fn, rep: int = 20) -> float:
    """Median µs of fn replayed as a CUDA graph (launch gaps do not count)."""
    import triton.testing

    return triton.testing.do_bench_cudagraph(fn, rep=rep) * 1e3


def cold_copies(nbytes: int) -> int:
    """How many copies of `nbytes` of data to cycle through so that one pass reads 3x the L2. Repeated runs
    over one buffer that fits in the L2 time the cache, not the memory: the 7B shapes' int4 weights are
    8-23 MB, an H200's L2 60 MB (session 7's sweeps timed them so, before this)."""
    return max(1, cdiv(3 * torch.cuda.get_device_properties(0).L2_cache_size, nbytes))


def bench_cold_us(fns: list) -> float:
    """Median µs of one call of `fns` (the same call on different copies of the data), all of them replayed
    as one CUDA graph: each reads its data from memory, not from the L2."""
    return bench_us(lambda: [f() for f in fns]) / len(fns)


def storage(k: int, n: int, bits: int, group: int, zero: bool, dtype: torch.dtype | None, gen: torch.Generator):
    """Random weight-only storage on the GPU: packed codes (dtype None) or int8 / FP8 values `dtype`,
    float32 scales a group, uint8 zero points when `zero`."""
    if dtype is None:
        q = pack(torch.randint(0, 2**bits, (n, k), generator=gen, device="cuda", dtype=torch.uint8), bits)
    else:
        q = (torch.randn(n, k, generator=gen, device="cuda") * 4).to(dtype)
    s = torch.rand(n, k // group, generator=gen, device="cuda") * 0.01
    z = torch.randint(0, 2**bits, s.shape, generator=gen, device="cuda", dtype=torch.uint8) if zero else None
    return q, s, z


def paths(kind: str, m: int, x, q, s, z, bits: int, g: int, lut) -> dict:
    """The paths the op can take for this storage at m tokens, each as a call."""
    k = x.shape[1]
    out = {}
    if m <= 8 and wo.words_config(q.shape[0], k, bits, g):
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


def sweep_kind(kind: str, deadline: float, gen: torch.Generator, on_row=print) -> tuple[list[dict], dict[int, str]]:
    """Rows of (m, each path's layer µs, the winner) for one storage kind, until `deadline` (time.time())."""
    bits, group, zero, dtype, table = KINDS[kind]
    lut = wo.code_table(table, torch.device("cuda")) if table else None
    stores = {(k, n): [storage(k, n, bits, group or k, zero, dtype, gen) for _ in range(cold_copies(n * k * bits // 8))]
              for k, n in LAYER}
    exact = {(k, n): wo.dequantize_reference(*stores[(k, n)][0], bits, group or k, k, lut, torch.float64) for k, n in LAYER}
    floats = {(k, n): [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) for _ in range(cold_copies(2 * n * k))]
              for k, n in LAYER}
    rows, winners = [], {}
    for m in MS:
        if time.time() > deadline:
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
        on_row(row)
    return rows, winners


def write_limits(path: Path, gpu: str, limits: dict[str, dict[str, int]]) -> None:
    """Put this GPU's measured limits into the dispatch file at `path`, over the kinds it held (other GPUs kept)."""
    import triton

    tables = json.loads(path.read_text()) if path.exists() else {}
    entry = tables.get(gpu, {})
    tables[gpu] = dict(limits={**entry.get("limits", {}), **limits}, source="lowbit bench dispatch", torch=torch.__version__,
                       triton=triton.__version__, date=datetime.date.today().isoformat())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(tables, indent=1, sort_keys=True) + "\n")


def run(kinds=tuple(KINDS), budget_s: float = 150, out: str | None = None, write_to: str | Path | None = None) -> dict:
    """Sweep each storage kind in `kinds` within `budget_s` seconds; a kind the budget cut short gets no limits. With
    `write_to`, the limits go into that dispatch file for this GPU (`weight_only.user_dispatch_file()` is the one the op
    reads over the package's). results.json and report.md go into `out` when given."""
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown storage kind {', '.join(map(repr, unknown))}; valid: {', '.join(KINDS)}")
    if not torch.cuda.is_available():
        raise ValueError("bench dispatch needs a CUDA GPU")
    deadline = time.time() + budget_s
    gen = torch.Generator(device="cuda").manual_seed(0)
    rows, limits = [], {}
    for kind in kinds:
        kind_rows, winners = sweep_kind(kind, deadline, gen, on_row=lambda r: print(json.dumps(r), flush=True))
        rows += kind_rows
        if len(winners) == len(MS):
            limits[kind] = limits_from(winners)
        else:
            print(f"{kind}: the budget ended at {len(winners)} of {len(MS)} token counts; no limits for it", flush=True)
    gpu = torch.cuda.get_device_name()
    result = {**environment("cuda"), "rows": rows, "limits": limits, "written_to": None}
    if write_to is not None and not limits:
        print(f"no storage kind finished within --budget-s {budget_s:g}: nothing written to {write_to}", flush=True)
    if write_to is not None and limits:
        write_limits(Path(write_to), gpu, limits)
        result["written_to"] = str(write_to)
        wo.gpu_entry.cache_clear()  # this process dispatches by the new limits from here on
        wo.dispatch_limits.cache_clear()
    if out:
        report.write(Path(out), result, f"Weight-only dispatch limits on {gpu}",
                     "The seven linears of a Llama-2-7B layer per storage kind and token count, µs as one CUDA graph of "
                     "weights read from memory; the fastest path in the dispatch order (words → gemv → swapped → dequant) "
                     "and its speedup over bf16 cuBLAS; each path's limit: the last token count it won at.",
                     format_table(result), plot, "paths.png")
    return result


def format_table(result: dict) -> list[str]:
    lines = ["| kind | tokens | bf16 µs | words | gemv | swapped | dequant | best (× bf16) |", "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in result["rows"]:
        us = r["us"]
        cells = [f"{us[p]:.1f}" if p in us else "–" for p in ORDER]
        lines.append(f"| {r['kind']} | {r['m']} | {us['bf16']:.1f} | {' | '.join(cells)} | {r['best']} ({r['speedup_vs_bf16']:.2f}x) |")
    lines += ["", "| kind | limits (tokens) |", "|---|---|"]
    lines += [f"| {kind} | {', '.join(f'{p} ≤ {m}' for p, m in lim.items())} |" for kind, lim in result["limits"].items()]
    if result.get("written_to"):
        lines += ["", f"Written to `{result['written_to']}`."]
    return lines


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = sorted({r["kind"] for r in result["rows"]})
    fig, axes = plt.subplots(1, max(1, len(kinds)), figsize=(4.5 * max(1, len(kinds)), 3.6), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        rows = [r for r in result["rows"] if r["kind"] == kind]
        for p in ORDER:
            pts = [(r["m"], r["us"]["bf16"] / r["us"][p]) for r in rows if p in r["us"]]
            if pts:
                ax.plot(*zip(*pts), marker="o", label=p)
        ax.axhline(1.0, color="gray", lw=0.8, ls="--")
        ax.set_xscale("log", base=2)
        ax.set_title(kind)
        ax.set_xlabel("tokens")
        ax.set_ylabel("× bf16")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
