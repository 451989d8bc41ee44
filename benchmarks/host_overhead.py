"""Host time of one eager call of the weight-only op, by stage: what a prefill that launches it from Python pays
per linear (session 8: a 128-token W4A16 prefill of the 7B model took ~31 ms more than bf16's). Tiny shapes
(K = N = 256), so the GPU keeps up and the time per call is the host's; then cProfile's top functions.

    PYTHONPATH=src python benchmarks/host_overhead.py --out host-overhead.json
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import time

import torch
import torch.nn.functional as F

from lowbit.ops import weight_only as wo
from sweep import storage  # benchmarks/, on the path when run as a script


def host_us(fn, calls: int = 2000) -> float:
    """µs a call over `calls` back-to-back calls, one synchronize at the end."""
    for _ in range(20):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / calls * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    gen = torch.Generator(device="cuda").manual_seed(0)
    k = n = 256
    q, s, z = storage(k, n, 4, 128, True, None, gen)
    w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
    impl = wo._weight_only_matmul  # the op's function, without torch.library's dispatch
    rows = {}
    for m in (1, 16, 128):
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        stages = {
            "F.linear bf16": lambda: F.linear(x, w),
            "weight_only_linear": lambda: wo.weight_only_linear(x, q, s, z, 4, 128),
            "the op (torch.library dispatch)": lambda: wo.weight_only_matmul(x, q, s, z, None, 4, 128, None, None),
            "op function, no torch.library dispatch": lambda: impl(x, q, s, z, None, 4, 128, None, None),
            "_check": lambda: wo._check(x, q, s, z, None, 4, 128, None, None),
            "path_limits": lambda: wo.path_limits(x, q, 4, None),
        }
        if m <= 2:
            cfg = wo.words_config(n, k, 4, 128)
            stages["_launch_words"] = lambda: wo._launch_words(x, q, s, z, 4, 128, None, None, cfg)
        elif m <= 64:
            cfg = wo.swapped_config(m, n, k, 4, 128)
            stages["swapped_config"] = lambda: wo.swapped_config(m, n, k, 4, 128)
            stages["_launch_swapped"] = lambda: wo._launch_swapped(x, q, s, z, 4, 128, None, None, cfg)
        else:
            cfg = wo.dequant_config(k, 4, 128, False)
            stages["_launch_dequant"] = lambda: wo._launch_dequant(q, s, z, 4, 128, k, None, x.dtype, cfg)
        rows[m] = {name: round(host_us(fn), 2) for name, fn in stages.items()}
        print(m, json.dumps(rows[m]), flush=True)
    x = torch.randn(128, k, device="cuda", dtype=torch.bfloat16)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(500):
        wo.weight_only_linear(x, q, s, z, 4, 128)
    torch.cuda.synchronize()
    prof.disable()
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(25)
    print(text.getvalue()[:6000])
    json.dump({"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "us_per_call": rows,
               "cprofile_500_calls_m128": text.getvalue()}, open(args.out, "w"), indent=1)


if __name__ == "__main__":
    main()
