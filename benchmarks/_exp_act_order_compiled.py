"""Session 20 (one-off): where act-order's gather of x belongs in a compiled decode step. An RMSNorm then the 4096 →
11008 linear at one token, compiled (Inductor), 32 of them (each its own weight) as one CUDA graph, µs a pair:
- plain W4A16 g128 (no act-order): the floor;
- act-order, x read through perm inside the word GEMV (the op's `perm`);
- act-order, x.index_select before the op (Inductor may fuse the gather into the norm's kernel).

    python benchmarks/_exp_act_order_compiled.py out.json
"""
import json
import sys

import torch

from lowbit.bench.linear import ActOrderGPTQ
from lowbit.methods import RTN
from lowbit.ops.weight_only import weight_only_linear

K, N, LAYERS = 4096, 11008, 32
torch.manual_seed(0)
ws = [torch.randn(N, K, device="cuda") * 0.02 for _ in range(LAYERS)]
acts = [ActOrderGPTQ().layer(w, None) for w in ws]
plain = [RTN(bits=4, granularity="group", group_size=128, symmetric=False).layer(w, None).cuda() for w in ws]
norm_w = torch.randn(K, device="cuda", dtype=torch.bfloat16)
h = torch.randn(1, K, device="cuda", dtype=torch.bfloat16)


def rms(x):
    return (x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + 1e-5)).to(x.dtype) * norm_w


def in_op(lay, x):
    return lay(rms(x))


def outside(lay, x):
    y = rms(x).index_select(-1, lay.perm)
    return weight_only_linear(y, lay.qweight, lay.scale, lay.zero, 4, 128, None, None)


def graph_us(fn, layers, reps=30):
    f = torch.compile(fn)
    for lay in layers[:2]:
        f(lay, h)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        outs = [f(lay, h) for lay in layers]
    g.replay()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        g.replay()
    end.record()
    torch.cuda.synchronize()
    return 1e3 * start.elapsed_time(end) / reps / len(layers), outs[0]


rows = {}
for name, fn, layers in (("plain W4A16", in_op, plain), ("act-order, perm in the GEMV", in_op, acts),
                         ("act-order, index_select before the op", outside, acts)):
    us, out = graph_us(fn, layers)
    lay = layers[0]
    ref = rms(h).double() @ lay.dequantize_weight(torch.float64).t()
    rows[name] = [round(us, 2), f"{((out.double() - ref).norm() / ref.norm()).item():.1e}"]
    print(json.dumps({name: rows[name]}), flush=True)
json.dump(rows, open(sys.argv[1], "w"), indent=1)
