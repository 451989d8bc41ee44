"""One llama2-1b MLP layer (1536 -> 6144 -> 1536, int8, 16 x 2048 tokens, bf16 autocast, compiled), forward and
backward, fused (`train.mlp.QuantTrainMLP`) against the three unfused QuantTrainLinears with torch's SiLU: wall ms
an iteration against the GPU kernel ms (torch.profiler), the allocator's cudaMalloc/cudaFree calls and retries over
the timed iterations (a cudaFree waits for the whole GPU), and the top kernels. Where wall exceeds kernel time with
no allocator calls, the host is what the GPU waits for.

    python3 benchmarks/_exp_fused_mlp.py --out $OUT/fused-mlp.json
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from lowbit import train as T
from lowbit.train.mlp import QuantTrainMLP
from sweep import write


class Unfused(nn.Module):
    def __init__(self, gate, up, down):
        super().__init__()
        self.gate_proj, self.up_proj, self.down_proj, self.act_fn = gate, up, down, nn.SiLU()

    def forward(self, x):
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


def linears(gen):
    recipe = T.recipe_for("int8")
    out = []
    for i, o in ((1536, 6144), (1536, 6144), (6144, 1536)):
        lin = T.QuantTrainLinear(i, o, False, recipe=recipe, device="cuda")
        with torch.no_grad():
            lin.weight.normal_(0, 0.02, generator=gen)
        out.append(lin)
    return out


def measure(name, module, x, g, iters=10):
    fn = torch.compile(module)

    def step():
        with torch.autocast("cuda", torch.bfloat16):
            y = fn(x)
        y.backward(g)

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    before = torch.cuda.memory_stats()
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    torch.cuda.synchronize()
    wall = (time.perf_counter() - t0) / iters * 1e3
    after = torch.cuda.memory_stats()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(3):
            step()
        torch.cuda.synchronize()
    kernels = [e for e in prof.key_averages() if e.device_type == torch.autograd.DeviceType.CUDA and e.self_device_time_total > 0]
    gpu = sum(e.self_device_time_total for e in kernels) / 3 / 1e3
    top = sorted(kernels, key=lambda e: -e.self_device_time_total)[:8]
    row = dict(variant=name, wall_ms=round(wall, 2), gpu_kernel_ms=round(gpu, 2),
               **{k: after.get(k, 0) - before.get(k, 0) for k in ("num_device_alloc", "num_device_free", "num_alloc_retries")},
               top=[(round(e.self_device_time_total / 3 / 1e3, 3), e.count // 3, e.key[:80]) for e in top])
    print(json.dumps(row), flush=True)
    return row


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    args = p.parse_args()
    gen = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(16, 2048, 1536, device="cuda", generator=gen).to(torch.bfloat16).requires_grad_()
    g = torch.randn(16, 2048, 1536, device="cuda", generator=gen).to(torch.bfloat16)
    rows = [measure("unfused", Unfused(*linears(gen)), x, g), measure("fused", QuantTrainMLP(*linears(gen)), x, g)]
    write(args.out, rows)


if __name__ == "__main__":
    main()
