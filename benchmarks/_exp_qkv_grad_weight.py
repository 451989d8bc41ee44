"""Experiment (prepared in session 15, not run): would one q/k/v weight gradient beat three?

A llama2-1b step at 16 x 2048 tokens computes q's, k's and v's weight gradients as three 1536 x 1536 x 32768 INT8
matmuls: 144 output tiles each for 264 consumer warpgroups, 168 µs at ~920 TOP/s (session 14, call 4), where
6144 x 1536 x 32768 ran at ~1320. Their column codes are exact when stacked (each output channel keeps its scale), so
a fused q/k/v linear could take one 4608 x 1536 x 32768 matmul, plus the stacking where the quantization does not
write the three into one buffer. Timed here: three matmuls, one stacked, and the stacking copy (torch.cat), each as
CUDA-graph replays (`bench.timing.gpu_ms`), per 24 layers.

    python3 benchmarks/_exp_qkv_grad_weight.py --out $OUT/qkv-grad-weight.json
"""

from __future__ import annotations

import argparse

import torch

from lowbit import ops
from lowbit.bench.timing import gpu_ms
from sweep import int8_operands, write

TOKENS, DIM, LAYERS = 16 * 2048, 1536, 24


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    args = p.parse_args()
    gen = torch.Generator(device="cuda").manual_seed(0)
    parts = [int8_operands(DIM, DIM, TOKENS, gen) for _ in range(3)]  # dy's column codes [N, T], x's [D, T], scales
    x_codes, x_scale = parts[0][1], parts[0][3]

    def three():
        return [ops.scaled_int8_mm(dy, x_codes.t(), s, x_scale, None, torch.bfloat16) for dy, _, s, _ in parts]

    stacked, stacked_scale = torch.cat([q for q, *_ in parts]), torch.cat([s for _, _, s, _ in parts])

    def one():
        return ops.scaled_int8_mm(stacked, x_codes.t(), stacked_scale, x_scale, None, torch.bfloat16)

    def stack():
        return torch.cat([q for q, *_ in parts]), torch.cat([s for _, _, s, _ in parts])

    ref = torch.cat(three())
    rel = ((one().double() - ref.double()).norm() / ref.double().norm()).item()
    rows = []
    for name, fn in (("three 1536x1536x32768", three), ("one 4608x1536x32768", one), ("stacking copy", stack)):
        ms, how = gpu_ms(fn)
        rows.append(dict(what=name, us=round(ms * 1e3, 1), ms_per_step=round(ms * LAYERS, 2), timing=how))
        print(rows[-1], flush=True)
    rows.append(dict(what="one against three, relative difference", value=rel))
    write(args.out, rows)


if __name__ == "__main__":
    main()
