"""`lowbit bench linear`: the linears of one Llama-2-7B decoder layer (q, k, v, o 4096→4096;
gate, up 4096→11008; down 11008→4096) at M tokens, per scheme, timed as one CUDA graph of all
seven (so launch gaps do not hide the kernels). Speedup is against bf16 in the same run; GB/s
counts the bytes each scheme must move at least (weights as stored, activations in and out).

Peers (`bench.peers`: bitsandbytes, torchao) run side by side where they import: torchao's layers
compiled, as torchao is meant to run, bitsandbytes' eagerly. A layer that cannot be captured in a
CUDA graph (bitsandbytes' LLM.int8() reads its outlier count on the host) is timed eagerly, said so in its row.
Writes results.json, report.md and speedup.png into `out`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

from ..measure import environment, model_bytes
from ..methods import FP8, GPTQ, LLMInt8, NF4, RTN, W8A8
from . import peers, report
from .timing import gpu_ms


class ActOrderGPTQ:
    """GPTQ's act-order storage (W4 g128 with zero points, columns in an order of their own) from a synthetic Hessian, a
    random diagonal: it orders the columns, and the codes are then RTN's. The bench times the storage, not GPTQ's
    accuracy, which calibration data decides."""

    def layer(self, weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Module:
        gen = torch.Generator(device=weight.device).manual_seed(1)
        hessian = torch.diag(torch.exp(torch.randn(weight.shape[1], device=weight.device, generator=gen)))
        return GPTQ(bits=4, group_size=128, act_order=True).layer_from_hessian(weight.float(), bias, hessian)


LLAMA2_7B_LINEARS = [("q", 4096, 4096), ("k", 4096, 4096), ("v", 4096, 4096), ("o", 4096, 4096),
                     ("gate", 4096, 11008), ("up", 4096, 11008), ("down", 11008, 4096)]
SCHEMES = {
    "bf16": None,
    "W8A8 int8 (Triton)": W8A8(act_granularity="token", weight_granularity="channel"),
    "FP8 W8A8 row-wise (_scaled_mm)": FP8(fmt="e4m3", granularity="channel", activations="token"),
    "W4A16 g128 (Triton)": RTN(bits=4, granularity="group", group_size=128, symmetric=False),
    # the storage GPTQ's act-order keeps (columns in group order): x read in that order, then the same kernels
    "W4A16 g128 act-order (Triton)": ActOrderGPTQ(),
    "W8A16 per-channel (Triton)": RTN(bits=8),
    "NF4 b64 (Triton)": NF4(block_size=64),
    "FP8 e4m3 weight-only (Triton)": FP8(fmt="e4m3", granularity="channel"),
    # run-time outlier columns (threshold 6) as a mask: past 64 tokens an int8 product and a weight-only one, both captured
    "LLM.int8() (Triton)": LLMInt8(),
}


def build_layers(method, device: str = "cuda") -> list[nn.Module]:
    gen = torch.Generator(device=device).manual_seed(0)
    layers = []
    for _, k, n in LLAMA2_7B_LINEARS:
        w = torch.randn(n, k, device=device, generator=gen, dtype=torch.bfloat16) * 0.02
        lin = nn.utils.skip_init(nn.Linear, k, n, bias=False, device=device, dtype=torch.bfloat16)
        lin.weight.data.copy_(w)
        layers.append(lin if method is None else method.layer(lin.weight.detach(), None).to(device))
    return layers


def copy_bandwidth(device: str = "cuda") -> float:
    """Measured device copy bandwidth, bytes/s (read + write), the ceiling for weight streaming."""
    import triton.testing

    x = torch.empty(1 << 28, dtype=torch.uint8, device=device)  # 256 MiB
    y = torch.empty_like(x)
    ms = triton.testing.do_bench(lambda: y.copy_(x), rep=200)
    return 2 * x.numel() / (ms * 1e-3)


def peer_layers(peer: str, device: str = "cuda") -> tuple[list[nn.Module], list[torch.Tensor]]:
    """The seven bf16 linears quantized by a peer library (compiled for torchao), and their float weights."""
    layers = build_layers(None, device)
    weights = [lin.weight.detach().clone() for lin in layers]
    names = [name for name, _, _ in LLAMA2_7B_LINEARS]
    container = nn.ModuleDict(dict(zip(names, layers)))
    peers.quantize(container, peer, names)
    mods = [container[name] for name in names]
    return ([torch.compile(m) for m in mods] if peer.startswith("torchao") else mods), weights


def activations(m: int, k: int, outlier_cols: int, gen: torch.Generator, device: str = "cuda") -> torch.Tensor:
    """x [m, k] ~ N(0, 1) in bf16, with `outlier_cols` random columns made outlier features: ±20 (+ N(0, 1)) in every
    row, the systematic large magnitudes LLM.int8()'s paper finds in a few hidden dimensions."""
    x = torch.randn(m, k, device=device, dtype=torch.bfloat16, generator=gen)
    if outlier_cols:
        cols = torch.randperm(k, device=device, generator=gen)[:outlier_cols]
        sign = torch.randint(0, 2, (outlier_cols,), device=device, generator=gen) * 2 - 1
        x[:, cols] += (20 * sign).to(x.dtype)
    return x


def time_layers(layers: list[nn.Module], m: int, device: str = "cuda", weights: list[torch.Tensor] | None = None,
                outlier_cols: int = 0) -> tuple[float, float, str]:
    """(median ms of one pass through all seven, relative error against x @ Wᵀ in float64, how it was
    timed). W: each layer's dequantized weight (the kernel's error alone), or `weights` where given
    (a peer's float weights: its quantization error too). Timed as a CUDA graph; a layer that cannot
    be captured is timed eagerly. `outlier_cols`: that many outlier feature columns in every x (`activations`)."""
    gen = torch.Generator(device=device).manual_seed(m)
    xs = [activations(m, k, outlier_cols, gen, device) for _, k, _ in LLAMA2_7B_LINEARS]

    def run():
        return [layer(x) for layer, x in zip(layers, xs)]

    with torch.no_grad():
        outs = run()
        torch.cuda.synchronize()
        ms, timing = gpu_ms(run)
        ws = weights or [_dequant(layer) for layer in layers]
        refs = [x.double() @ w.double().t() for w, x in zip(ws, xs)]
    err = max(((o.double() - r).norm() / r.norm()).item() for o, r in zip(outs, refs))
    return ms, err, timing


def _dequant(layer: nn.Module) -> torch.Tensor:
    return layer.weight if isinstance(layer, nn.Linear) else layer.dequantize_weight(torch.float32)


def run(ms_tokens=(1, 16, 256, 4096), out: str | None = None, peer_names: list[str] | None = None, outlier_cols: int = 0) -> dict:
    """Every (scheme, M) row. `peer_names`: the peer schemes to add (default: every one whose library
    imports); results.json, report.md and speedup.png go into `out` when given. `outlier_cols`: outlier
    feature columns planted in every input (`activations`; 0: plain N(0, 1) inputs)."""
    narrowest = min(k for _, k, _ in LLAMA2_7B_LINEARS)
    if not 0 <= outlier_cols <= narrowest:
        raise ValueError(f"outlier_cols must be between 0 and the linears' smallest input width, {narrowest}, got {outlier_cols}")
    if peer_names is None:
        peer_names = [p for p in peers.PEERS if peers.importable(p)]
    unknown = [p for p in peer_names if p not in peers.PEERS]
    if unknown:
        raise ValueError(f"unknown peer scheme {', '.join(map(repr, unknown))}; valid: {', '.join(peers.PEERS)}")
    if not torch.cuda.is_available():
        raise ValueError("bench linear needs a CUDA GPU")
    missing = [p for p in peer_names if not peers.importable(p)]
    if missing:
        print(f"skipping {', '.join(missing)}: {', '.join(sorted({peers.library(p) for p in missing}))} not installed", flush=True)
    bandwidth = copy_bandwidth()
    rows = []
    entries = [(name, lambda method=method: (build_layers(method), None), False) for name, method in SCHEMES.items()]
    entries += [(peers.PEERS[p], lambda p=p: peer_layers(p), True) for p in peer_names if p not in missing]
    for name, build, is_peer in entries:
        try:
            layers, weights = build()
            timed = [(m, *time_layers(layers, m, weights=weights, outlier_cols=outlier_cols)) for m in ms_tokens]
            weight_bytes = sum(model_bytes(layer) for layer in layers)
        except Exception as exc:  # noqa: BLE001 - a peer that fails on this GPU / torch: a row that says so
            if not is_peer:
                raise
            rows += [{"scheme": name, "M": m, "peer": True, "error": f"{type(exc).__name__}: {report.first_line(exc, 200)}"}
                     for m in ms_tokens]
            torch.cuda.empty_cache()
            continue
        for m, ms, err, timing in timed:
            act_bytes = sum(2 * m * (k + n) for _, k, n in LLAMA2_7B_LINEARS)
            rows.append({"scheme": name, "M": m, "peer": is_peer, "ms": ms, "rel_err": err, "timing": timing,
                         "weight_bytes": weight_bytes, "GB_s": (weight_bytes + act_bytes) / (ms * 1e-3) / 1e9})
        del layers
        torch.cuda.empty_cache()
    base = {r["M"]: r["ms"] for r in rows if r["scheme"] == "bf16"}
    for r in rows:
        if "ms" in r:
            r["speedup_vs_bf16"] = base[r["M"]] / r["ms"]
    result = {**environment("cuda"), "copy_bandwidth_GB_s": bandwidth / 1e9, "outlier_cols": outlier_cols, "rows": rows}
    if out:
        write_report(result, Path(out))
    return result


def format_table(result: dict) -> list[str]:
    ms_tokens = sorted({r["M"] for r in result["rows"]})
    outliers = result.get("outlier_cols", 0)
    lines = [f"{result['gpu']}, torch {result['torch']}, triton {result['triton']}; device copy {result['copy_bandwidth_GB_s']:.0f} GB/s"
             + (f"; {outliers} outlier feature columns (±20) in every input" if outliers else ""),
             "", "| scheme | " + " | ".join(f"M={m}: ms (x bf16, GB/s)" for m in ms_tokens) + " | max rel err |",
             "|---|" + "---:|" * (len(ms_tokens) + 1)]
    for scheme in dict.fromkeys(r["scheme"] for r in result["rows"]):
        rs = {r["M"]: r for r in result["rows"] if r["scheme"] == scheme}
        label = scheme + (" (peer)" if any(r.get("peer") for r in rs.values()) else "")
        if any("error" in r for r in rs.values()):
            lines.append(f"| {label} | failed: {next(r['error'] for r in rs.values() if 'error' in r)} |" + " |" * len(ms_tokens))
            continue
        cells = [f"{rs[m]['ms']:.3f} ({rs[m]['speedup_vs_bf16']:.2f}x, {rs[m]['GB_s']:.0f})" + ("" if rs[m].get("timing", "cuda graph") == "cuda graph" else " eager")
                 for m in ms_tokens]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {max(r['rel_err'] for r in rs.values()):.1e} |")
    return lines


def plot(result: dict, path: Path) -> None:
    """Speedup over bf16 against tokens, one line a scheme (peers dashed), 1x marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10.5, 4.5))
    for scheme in dict.fromkeys(r["scheme"] for r in result["rows"]):
        pts = sorted((r["M"], r["speedup_vs_bf16"]) for r in result["rows"] if r["scheme"] == scheme and "speedup_vs_bf16" in r)
        peer = any(r.get("peer") for r in result["rows"] if r["scheme"] == scheme)
        if pts and scheme != "bf16":
            ax.plot(*zip(*pts), marker="o", linestyle="--" if peer else "-", label=scheme + (" (peer)" if peer else ""))
    ax.axhline(1.0, color="gray", linewidth=1)
    ax.set_xscale("log", base=2)
    ms_tokens = sorted({r["M"] for r in result["rows"]})
    ax.set_xticks(ms_tokens, [str(m) for m in ms_tokens])
    ax.set_xlabel("tokens (M)")
    ax.set_ylabel("speedup over bf16 (7 linears of a Llama-2-7B layer)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))  # outside: inside it hid the large-M points
    ax.set_title(f"bench linear — {result['gpu']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(result: dict, out_dir: Path) -> None:
    report.write(out_dir, result, "The linears of a Llama-2-7B layer",
                 "Seven linears (q, k, v, o 4096→4096; gate, up 4096→11008; down 11008→4096), one CUDA graph of all seven "
                 "(`eager`: timed without a graph), median ms; GB/s: weights as stored plus activations in and out. "
                 "max rel err: against x @ Wᵀ in float64 with W the layer's dequantized weight (peers: the float weight, "
                 "so their quantization error too).", format_table(result), plot, "speedup.png")


if __name__ == "__main__":
    res = run(out=sys.argv[1] if len(sys.argv) > 1 else None)
    print("\n".join(format_table(res)))
