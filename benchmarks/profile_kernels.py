"""Where the GPU time goes, kernel by kernel: a 7B decode step per scheme (the step `bench generate`
times, layers compiled), and the seven linears of `bench linear` per scheme at a token count.

The kernels run eagerly under torch.profiler (device-side durations, so launch gaps do not count);
the step is also replayed as a CUDA graph for its real time. Kernels are grouped by a short name.

    python benchmarks/profile_kernels.py --out profile.json \
        --decode bf16 w4a16-g128 --linear "LLM.int8() (Triton)" --tokens 256
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import tempfile
import time

import torch


def kernel_times(fn, repeats: int) -> tuple[dict[str, float], dict[str, float]]:
    """µs a call of each kernel name that `fn` launches, and its launches a call, from the profiler's trace."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(repeats):
            fn()
        torch.cuda.synchronize()
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        prof.export_chrome_trace(f.name)
        trace = json.load(open(f.name))
    sums: dict[str, float] = collections.defaultdict(float)
    counts: dict[str, float] = collections.defaultdict(float)
    for ev in trace["traceEvents"]:
        if ev.get("cat") == "kernel":
            grid = ev.get("args", {}).get("grid")
            name = short(ev["name"]) + (f" grid {grid}" if grid else "")
            sums[name] += ev["dur"] / repeats
            counts[name] += 1 / repeats
    order = sorted(sums, key=lambda n: -sums[n])
    return {n: sums[n] for n in order}, {n: counts[n] for n in order}


def short(name: str) -> str:
    name = re.sub(r"<.*", "", name)
    name = re.sub(r"\(.*", "", name)
    return name[:60]


def graph_us(fn, repeats: int = 20) -> float:
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    graph.replay()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(repeats):
        graph.replay()
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / repeats * 1e6


def print_table(title: str, times: dict[str, float], counts: dict[str, float], total_us: float | None) -> None:
    busy = sum(times.values())
    print(f"\n{title}: kernels {busy:.1f} µs in {sum(counts.values()):.0f} launches"
          + (f", graph replay {total_us:.1f} µs" if total_us else ""), flush=True)
    for name, us in list(times.items())[:40]:
        print(f"  {us:9.1f} µs  {100 * us / busy:5.1f} %  {counts[name]:5.0f} × {us / counts[name]:6.2f} µs  {name}")


def drop_norms(model: torch.nn.Module) -> int:
    """Every decoder layer's RMSNorms replaced by the identity: what the step would cost with them fused away
    (a timing ceiling only; the numbers are wrong). Returns how many were dropped."""
    count = 0
    for layer in model.model.layers:
        for name in ("input_layernorm", "post_attention_layernorm"):
            setattr(layer, name, torch.nn.Identity())
            count += 1
    return count


def profile_decode(scheme: str, attention: str = "lowbit", fuse: bool = True, no_norms: bool = False, norms: bool = False) -> dict:
    from lowbit.bench import generate as g
    from lowbit.models.attention import use_decode_attention
    from lowbit.models.fuse import fuse_projections
    from lowbit.models.fused_norms import fuse_norms

    device = torch.device("cuda")
    model = g.build_model("7b", device)
    if fuse:  # as bench generate does
        fuse_projections(model)
    if attention == "lowbit":
        use_decode_attention(model)
    g.quantize_model(model, g.available_schemes()[scheme])
    fused_norms = fuse_norms(model) if norms else 0  # as bench generate --fuse-norms does
    if no_norms:
        drop_norms(model)
    prompt = torch.randint(3, 32000, (1, 128), generator=torch.Generator().manual_seed(1))
    gen = g.StaticGenerator(model, 1, 128, 128, graph=False, compile=True)
    gen.warmup(prompt)
    gen.step()

    def step():
        gen.position.fill_(130)  # stay inside the cache however many steps run
        gen.step_index.fill_(2)
        gen.step()

    times, counts = kernel_times(step, 5)
    total = graph_us(step)
    title = f"decode step, 7B, {scheme}, {attention} attention, {'' if fuse else 'not '}fused" + (", no norms" if no_norms else f", {fused_norms} norms fused")
    print_table(title, times, counts, total)
    return dict(kernels_us=times, launches=counts, graph_us=total)


def profile_linear(scheme: str, tokens: int, outlier_cols: int = 0) -> dict:
    from lowbit.bench import linear as lin

    layers = lin.build_layers(lin.SCHEMES[scheme])
    gen = torch.Generator(device="cuda").manual_seed(tokens)
    xs = [lin.activations(tokens, k, outlier_cols, gen) for _, k, _ in lin.LLAMA2_7B_LINEARS]

    def run():
        with torch.no_grad():
            for layer, x in zip(layers, xs):
                layer(x)

    times, counts = kernel_times(run, 10)
    total = graph_us(run)
    print_table(f"bench linear's seven linears, {scheme}, {tokens} tokens, {outlier_cols} outlier columns", times, counts, total)
    return dict(kernels_us=times, launches=counts, graph_us=total)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--decode", nargs="*", default=[], help="bench generate scheme names")
    ap.add_argument("--linear", nargs="*", default=[], help="bench linear scheme labels")
    ap.add_argument("--tokens", type=int, nargs="+", default=[256])
    ap.add_argument("--outlier-cols", type=int, default=0, help="outlier feature columns in every input (bench linear's)")
    ap.add_argument("--attention", choices=["lowbit", "sdpa"], default="lowbit", help="the decode steps' attention")
    ap.add_argument("--fuse", action=argparse.BooleanOptionalAction, default=True, help="q/k/v and gate/up fused (decode)")
    ap.add_argument("--fuse-norms", action=argparse.BooleanOptionalAction, default=False,
                    help="RMSNorms into the weight-only GEMVs (decode), as bench generate --fuse-norms does")
    ap.add_argument("--no-norms", action="store_true", help="decoder RMSNorms dropped: a timing ceiling, wrong numbers")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    result = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "decode": {}, "linear": {}}
    jobs = [("linear", f"{s} @ {m}", lambda s=s, m=m: profile_linear(s, m, args.outlier_cols)) for s in args.linear for m in args.tokens]
    jobs += [("decode", s, lambda s=s: profile_decode(s, args.attention, args.fuse, args.no_norms, args.fuse_norms)) for s in args.decode]
    for part, key, job in jobs:
        try:
            result[part][key] = job()
        except Exception as e:  # one failing part must not lose the others
            print(f"{part} {key}: FAILED {type(e).__name__}: {e}", flush=True)
            result[part][key] = {"error": f"{type(e).__name__}: {e}"}
        torch.cuda.empty_cache()
        json.dump(result, open(args.out, "w"), indent=1)
    json.dump(result, open(args.out, "w"), indent=1)


if __name__ == "__main__":
    main()
