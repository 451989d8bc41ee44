"""Where a training step's GPU time goes, per precision: torch.profiler over a few compiled steps of
the `lowbit bench train` model, kernels grouped by what they do. Writes profile-<precision>.txt.

    python3 benchmarks/profile_train.py --precisions bf16 int8 --out $OUT
"""

from __future__ import annotations

import argparse
import collections
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from lowbit.train.loop import Optimizers, TrainConfig, build_model, compile_blocks, prepare_model, train_step
from lowbit.train.mlp import fuse_mlps

GROUPS = [  # first match wins: (group, substrings of the kernel name)
    ("int8 matmul (lowbit)", ["_scaled_mm_kernel", "_scaled_mm_tma_kernel", "_pingpong_mm_kernel"]),
    ("quantize (lowbit: int8, e4m3)", ["_absmax_tiles", "_quantize_tiles", "_quantize_rows"]),
    ("cuBLAS / cutlass gemm", ["gemm", "cutlass", "sm90_xmma", "nvjet", "ampere", "sm80"]),
    ("attention", ["flash", "attention", "fmha"]),
    ("optimizer", ["adam", "foreach", "multi_tensor"]),
]


def group_of(name: str) -> str:
    low = name.lower()
    for group, keys in GROUPS:
        if any(k.lower() in low for k in keys):
            return group
    return "other (inductor fused, copies, ...)"


def profile_one(precision: str, batch: int, seq: int, steps: int, fuse_mlp: bool = False, cuda_graphs: bool = True) -> str:
    device = torch.device("cuda")
    cfg = TrainConfig(data="", out="/tmp/profile", preset="llama2-1b", precision=precision, batch_size=batch, seq_len=seq, compile=True)
    model = prepare_model(build_model(cfg, 32000), cfg, device)
    if fuse_mlp:  # `train.mlp`'s fused MLP, off by default in convert
        fuse_mlps(model)
    opt = Optimizers(model, cfg, device)
    fwd = compile_blocks(model, cuda_graphs)  # as `lowbit bench train` does on CUDA, graphs unless asked otherwise
    data = torch.randint(0, 32000, (3 + 2 * steps, batch, seq + 1), device=device)

    def step(i: int) -> None:
        train_step(fwd, opt, cfg, device, data[i, :, :-1], data[i, :, 1:], cuda_graphs)

    for i in range(3):
        step(i)
    torch.cuda.synchronize()
    t0 = time.perf_counter()  # unprofiled: the step's wall time, against which the kernels' sum shows GPU idle
    for i in range(steps):
        step(3 + i)
    torch.cuda.synchronize()
    wall = (time.perf_counter() - t0) / steps * 1e3
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for i in range(steps):
            step(3 + steps + i)
        torch.cuda.synchronize()
    # a user range (record_function: the optimizer's "Optimizer.step#AdamW.step") shows on the GPU's timeline too, as
    # a span over its kernels: counting it counted the optimizer's ~8 ms twice (sessions 11-15's profiles)
    ranges = {e.name for e in prof.events() if getattr(e, "is_user_annotation", False)}
    kernels = [e for e in prof.key_averages()
               if e.device_type == torch.autograd.DeviceType.CUDA and e.self_device_time_total > 0 and e.key not in ranges]
    total = sum(e.self_device_time_total for e in kernels) / steps / 1e3
    by_group = collections.Counter()
    for e in kernels:
        by_group[group_of(e.key)] += e.self_device_time_total / steps / 1e3
    lines = [f"# {precision}{' (fused MLP)' if fuse_mlp else ''}: batch {batch} x {seq}, {steps} profiled steps; GPU kernel time "
             f"{total:.1f} ms a step; wall {wall:.1f} ms a step unprofiled", ""]
    lines += [f"{g:40s} {ms:8.1f} ms  {100 * ms / total:5.1f} %" for g, ms in by_group.most_common()]
    lines += ["", "top kernels (ms a step, calls a step):"]
    for e in sorted(kernels, key=lambda e: -e.self_device_time_total)[:25]:
        lines.append(f"{e.self_device_time_total / steps / 1e3:8.2f} {e.count // steps:6d}  {e.key[:110]}")
    # the host's side: where a step's CPU time goes (a GPU that waits on the host shows a step longer than its kernels)
    host = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    lines += ["", f"host: {sum(e.self_cpu_time_total for e in host) / steps / 1e3:.1f} ms of self CPU time a step; top ops (ms a step, calls a step):"]
    for e in sorted(host, key=lambda e: -e.self_cpu_time_total)[:15]:
        lines.append(f"{e.self_cpu_time_total / steps / 1e3:8.2f} {e.count // steps:6d}  {e.key[:110]}")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--precisions", nargs="+", default=["bf16", "int8"])
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seq-len", type=int, default=2048)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--out", default="reports/profile-train")
    p.add_argument("--fuse-mlp", action="store_true", help="the fused MLP of lowbit.train.mlp (its file gets -fused-mlp)")
    p.add_argument("--cuda-graphs", action=argparse.BooleanOptionalAction, default=True, help="replay the blocks as CUDA graphs")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for precision in args.precisions:
        text = profile_one(precision, args.batch_size, args.seq_len, args.steps, args.fuse_mlp, args.cuda_graphs)
        torch._dynamo.reset()  # the model is gone with profile_one's frame; this frees the CUDA graph trees' pool too
        torch.cuda.empty_cache()
        (out / f"profile-{precision}{'-fused-mlp' if args.fuse_mlp else ''}.txt").write_text(text + "\n")
        print(text, flush=True)


if __name__ == "__main__":
    main()
