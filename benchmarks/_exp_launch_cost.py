"""Host time of one eager call, and GPU time from CUDA-graph replay, of the Gluon INT8 matmul (`ops.int8_hopper`)
and the Triton TMA kernel. Session 13's call 5 timed the Gluon kernel at half the Triton kernel's speed on
2048^3 with do_bench, which launches eagerly: is that the host's cost a launch, or the kernel?

    python3 benchmarks/_exp_launch_cost.py --out $OUT/launch-cost.json
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from lowbit.ops import int8 as int8_ops
from lowbit.ops import int8_hopper
from sweep import int8_operands, write


def host_us(fn, calls=200) -> float:
    fn()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(calls):
        fn()
    host = (time.perf_counter() - t) / calls * 1e6
    torch.cuda.synchronize()
    return round(host, 1)


def graph_us(fn, replays=50) -> float:
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        fn()
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g, stream=stream):
        for _ in range(10):
            fn()
    g.replay()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(replays):
        g.replay()
    end.record()
    torch.cuda.synchronize()
    return round(start.elapsed_time(end) / replays / 10 * 1e3, 1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    args = p.parse_args()
    gen = torch.Generator(device="cuda").manual_seed(0)
    rows = []
    for m, n, k in [(640, 256, 256), (1024, 4096, 4096), (2048, 2048, 2048), (1024, 11008, 4096), (4096, 4096, 4096),
                    (2048, 4096, 4096), (4096, 11008, 4096)]:
        a, bt, sa, sb = int8_operands(m, n, k, gen)
        runs = {"triton": lambda: int8_ops.scaled_int8_mm_tma(a, bt, sa, sb, None, torch.bfloat16, int8_ops.TMA_TILE),
                "gluon": lambda: int8_hopper.scaled_mm_pingpong(a, bt, sa, sb, None, torch.bfloat16)}
        row = dict(m=m, n=n, k=k)
        for name, fn in runs.items():
            row[f"{name}_host_us"] = host_us(fn)
            row[f"{name}_graph_us"] = graph_us(fn)
        print(json.dumps(row), flush=True)
        rows.append(row)
        write(args.out, rows)


if __name__ == "__main__":
    main()
