"""Which quantized layer of a GPT-2-small-shaped model goes wrong on CUDA (tests/test_gpu.py's
quantize → forward check): each method's logits SQNR, then every quantized layer's output on the
model's own activations against x @ Wᵀ (+ b) in float64 with W its dequantized weight, worst first.

    PYTHONPATH=src python benchmarks/diagnose_gpt2_cuda.py
"""

from __future__ import annotations

import copy

import torch
from transformers import GPT2Config, GPT2LMHeadModel

import lowbit
from lowbit.formats.error import sqnr
from lowbit.layers.base import QuantLinear


def main() -> None:
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config()).to("cuda", torch.bfloat16).eval()
    ids = torch.randint(0, 50257, (2, 128), device="cuda")
    with torch.no_grad():
        ref = model(ids).logits.float()
    for method in (lowbit.RTN(8), lowbit.NF4(64, True), lowbit.W8A8()):
        q = lowbit.quantize(copy.deepcopy(model), method, "all")
        errs = []

        def hook(mod, args, out, name=None):
            x = args[0].reshape(-1, mod.in_features)
            want = x.double() @ mod.dequantize_weight(torch.float64).t()
            if mod.bias is not None:
                want = want + mod.bias.double()
            got = out.reshape(-1, mod.out_features).double()
            errs.append((((got - want).norm() / want.norm()).item(), name, tuple(x.shape)))

        for name, mod in q.named_modules():
            if isinstance(mod, QuantLinear):
                mod.register_forward_hook(lambda m, a, o, name=name: hook(m, a, o, name))
        with torch.no_grad():
            out = q(ids).logits.float()
        errs.sort(reverse=True)
        print(type(method).__name__, f"logits sqnr {sqnr(ref, out):.1f} dB; worst layers:", errs[:3], flush=True)


if __name__ == "__main__":
    main()
