"""`lowbit bench linear`: the linears of one Llama-2-7B decoder layer (q, k, v, o 4096→4096;
gate, up 4096→11008; down 11008→4096) at M tokens, per scheme, timed as one CUDA graph of all
seven (so launch gaps do not hide the kernels). Speedup is against bf16 in the same run; GB/s
counts the bytes each scheme must move at least (weights as stored, activations in and out).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch import nn

from ..measure import environment, model_bytes
from ..methods import FP8, NF4, RTN, W8A8

LLAMA2_7B_LINEARS = [("q", 4096, 4096), ("k", 4096, 4096), ("v", 4096, 4096), ("o", 4096, 4096),
                     ("gate", 4096, 11008), ("up", 4096, 11008), ("down", 11008, 4096)]
SCHEMES = {
    "bf16": None,
    "W8A8 int8 (Triton)": W8A8(act_granularity="token", weight_granularity="channel"),
    "FP8 W8A8 row-wise (_scaled_mm)": FP8(fmt="e4m3", granularity="channel", activations="token"),
    "W4A16 g128 (Triton)": RTN(bits=4, granularity="group", group_size=128, symmetric=False),
    "W8A16 per-channel (Triton)": RTN(bits=8),
    "NF4 b64 (Triton)": NF4(block_size=64),
}


def build_layers(method, device: str = "cuda") -> list[nn.Module]:
    gen = torch.Generator(device=device).manual_seed(0)
    layers = []
    for _, k, n in LLAMA2_7B_LINEARS:
        w = torch.randn(n, k, device=device, generator=gen, dtype=torch.bfloat16) * 0.02
        lin = nn.Linear(k, n, bias=False, device=device, dtype=torch.bfloat16)
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


def time_layers(layers: list[nn.Module], m: int, device: str = "cuda") -> tuple[float, float]:
    """(median ms of one pass through all seven as a CUDA graph, relative error vs bf16 reference)."""
    import triton.testing

    xs = [torch.randn(m, k, device=device, dtype=torch.bfloat16) for _, k, _ in LLAMA2_7B_LINEARS]

    def run():
        return [layer(x) for layer, x in zip(layers, xs)]

    with torch.no_grad():
        outs = run()
        torch.cuda.synchronize()
        ms = triton.testing.do_bench_cudagraph(run, rep=100)
        refs = [x.double() @ _dequant(layer).double().t() for layer, x in zip(layers, xs)]
    err = max(((o.double() - r).norm() / r.norm()).item() for o, r in zip(outs, refs))
    return ms, err


def _dequant(layer: nn.Module) -> torch.Tensor:
    return layer.weight if isinstance(layer, nn.Linear) else layer.dequantize_weight(torch.float32)


def run(ms_tokens=(1, 16, 256, 4096), out: str | None = None) -> dict:
    if not torch.cuda.is_available():
        raise ValueError("bench linear needs a CUDA GPU")
    bandwidth = copy_bandwidth()
    rows = []
    for name, method in SCHEMES.items():
        layers = build_layers(method)
        weight_bytes = sum(model_bytes(layer) for layer in layers)
        for m in ms_tokens:
            ms, err = time_layers(layers, m)
            act_bytes = sum(2 * m * (k + n) for _, k, n in LLAMA2_7B_LINEARS)
            rows.append({"scheme": name, "M": m, "ms": ms, "rel_err": err, "weight_bytes": weight_bytes,
                         "GB_s": (weight_bytes + act_bytes) / (ms * 1e-3) / 1e9})
        del layers
        torch.cuda.empty_cache()
    base = {r["M"]: r["ms"] for r in rows if r["scheme"] == "bf16"}
    for r in rows:
        r["speedup_vs_bf16"] = base[r["M"]] / r["ms"]
    result = {**environment("cuda"), "copy_bandwidth_GB_s": bandwidth / 1e9, "rows": rows}
    if out:
        Path(out).write_text(json.dumps(result, indent=2))
    return result


def format_table(result: dict) -> list[str]:
    ms_tokens = sorted({r["M"] for r in result["rows"]})
    lines = [f"{result['gpu']}, torch {result['torch']}, triton {result['triton']}; device copy {result['copy_bandwidth_GB_s']:.0f} GB/s",
             "", "| scheme | " + " | ".join(f"M={m}: ms (x bf16, GB/s)" for m in ms_tokens) + " | max rel err |",
             "|---|" + "---:|" * (len(ms_tokens) + 1)]
    for scheme in dict.fromkeys(r["scheme"] for r in result["rows"]):
        rs = {r["M"]: r for r in result["rows"] if r["scheme"] == scheme}
        cells = [f"{rs[m]['ms']:.3f} ({rs[m]['speedup_vs_bf16']:.2f}x, {rs[m]['GB_s']:.0f})" for m in ms_tokens]
        lines.append(f"| {scheme} | " + " | ".join(cells) + f" | {max(r['rel_err'] for r in rs.values()):.1e} |")
    return lines


if __name__ == "__main__":
    res = run(out=sys.argv[1] if len(sys.argv) > 1 else None)
    print("\n".join(format_table(res)))
