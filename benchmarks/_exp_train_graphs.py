"""Experiment (session 15): does the llama2-1b training step wait on the host, and do CUDA graphs end that?

Session 15's call 2 profiled int8: 330.0 ms of kernels a step against 342.4 ms of wall time, the host's top ops being
lowbit's own (quantize_rows_cols ~160 µs a call profiled, the INT8 matmul ~116 µs, 936 calls a step), and one
cudaStreamSynchronize a step. Here, per precision and compile mode (the decoder blocks compiled as `lowbit bench
train` does, or with mode="reduce-overhead": Inductor's CUDA graph trees):
  - the step's time on the GPU (CUDA events) and in wall time, and the host's time to issue a step (it runs ahead
    of the GPU until a sync: a host slower than its GPU shows host ≈ wall);
  - peak memory;
  - for the default mode, the stacks of the synchronizing CUDA calls in one step (torch.cuda.set_sync_debug_mode).

    python3 benchmarks/_exp_train_graphs.py --precisions bf16 int8 --out $OUT/graphs.json
"""

from __future__ import annotations

import argparse
import gc
import json
import time
import traceback
import warnings

import torch

from lowbit.train.loop import Optimizers, TrainConfig, build_model, prepare_model, train_step
from lowbit.models.hf import repeated_blocks


def sync_stacks(step) -> list[str]:
    """The call stacks (lowbit/transformers/torch frames, innermost last) of the CUDA syncs during step()."""
    stacks = []

    def record(message, category, filename, lineno, file=None, line=None):
        if "synchroniz" in str(message):
            frames = [f for f in traceback.format_stack()[:-2] if "warnings.py" not in f]
            stacks.append("".join(frames[-8:]))

    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings():  # restores showwarning on exit
            warnings.simplefilter("always")
            warnings.showwarning = record
            step()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    return stacks


def run_one(precision: str, mode: str | None, batch: int, seq: int, steps: int, preset: str = "llama2-1b") -> dict:
    device = torch.device("cuda")
    cfg = TrainConfig(data="", out="/tmp/graphs", preset=preset, precision=precision, batch_size=batch, seq_len=seq, compile=True)
    model = prepare_model(build_model(cfg, 32000), cfg, device)
    opt = Optimizers(model, cfg, device)
    for block in repeated_blocks(model):
        block.compile(mode=mode)
    data = torch.randint(0, 32000, (4 + steps, batch, seq + 1), device=device)

    def step(i: int) -> None:  # (as run in session 15's call 3, with the steps spelled out; clip 1.0 is the default)
        train_step(model, opt, cfg, device, data[i, :, :-1], data[i, :, 1:], mode == "reduce-overhead")

    for i in range(3):
        step(i)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(steps)]
    host = []
    t0 = time.perf_counter()
    for i in range(steps):
        h0 = time.perf_counter()
        events[i][0].record()
        step(3 + i)
        events[i][1].record()
        host.append((time.perf_counter() - h0) * 1e3)
    torch.cuda.synchronize()
    wall = (time.perf_counter() - t0) / steps * 1e3
    gpu = sorted(a.elapsed_time(b) for a, b in events)
    row = {"precision": precision, "mode": mode or "default", "step_ms_median": round(gpu[len(gpu) // 2], 2),
           "wall_ms": round(wall, 2), "host_issue_ms": [round(h, 1) for h in host],
           "peak_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2)}
    if mode is None:
        stacks = sync_stacks(lambda: step(3 + steps))
        row["syncs_a_step"] = len(stacks)
        row["sync_stacks"] = stacks[:6]
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--precisions", nargs="+", default=["bf16", "int8"])
    p.add_argument("--modes", nargs="+", default=["default", "reduce-overhead"])
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=2048)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--preset", default="llama2-1b")
    p.add_argument("--out", default="reports/train-graphs.json")
    args = p.parse_args()
    rows = []
    for precision in args.precisions:
        for mode in args.modes:
            try:
                rows.append(run_one(precision, None if mode == "default" else mode, args.batch_size, args.seq_len, args.steps, args.preset))
            except Exception as exc:  # noqa: BLE001 - an experiment: record the failure, go on
                rows.append({"precision": precision, "mode": mode, "error": f"{type(exc).__name__}: {str(exc)[:600]}"})
            gc.collect()
            torch._dynamo.reset()  # also frees the CUDA graph trees' memory pool
            torch.cuda.empty_cache()
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "sync_stacks"}), flush=True)
            with open(args.out, "w") as f:
                json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
