"""GPTQ w4 g128 on a Llama-2-7B-shaped model (random weights, real shapes) with 128 x 2048
calibration tokens, the model kept on the CPU and one block at a time on the GPU.

    python benchmarks/gptq_7b.py --out docs/benchmarks/gptq-7b.json

Records wall time and peak GPU memory against the full model's bf16 size.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM

import lowbit
from lowbit.measure import model_bytes

LLAMA2_7B = dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                 num_key_value_heads=32, vocab_size=32000, max_position_embeddings=4096)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--layers", type=int, default=32, help="decoder layers (32 = the real 7B)")
    p.add_argument("--calib-n", type=int, default=128)
    p.add_argument("--calib-len", type=int, default=2048)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    if not torch.cuda.is_available():
        print("needs a CUDA GPU", file=sys.stderr)
        return 1
    config = LlamaConfig(**{**LLAMA2_7B, "num_hidden_layers": args.layers})
    t0 = time.perf_counter()
    with torch.device("cuda"):  # random init is fast on the GPU; then the model lives on the CPU
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model = model.to("cpu").eval()
    torch.cuda.empty_cache()
    init_s = time.perf_counter() - t0
    full_bytes = model_bytes(model)
    gen = torch.Generator().manual_seed(0)
    calibration = torch.randint(0, config.vocab_size, (args.calib_n, args.calib_len), generator=gen)
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    lowbit.quantize(model, lowbit.GPTQ(bits=4, group_size=128), "no-lm_head", calibration=calibration, progress=True, device="cuda")
    torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated()
    # check the result runs: one forward of the quantized model on the GPU
    model = model.to("cuda")
    with torch.no_grad():
        logits = model(calibration[:1, :128].cuda()).logits
    result = {
        "what": f"GPTQ w4 g128 (lowbit.GPTQ defaults), Llama-2-7B shapes ({args.layers} layers), random weights, bf16",
        "calibration": f"{args.calib_n} x {args.calib_len} random tokens",
        "select": "no-lm_head",
        "quantize_seconds": round(seconds, 1),
        "peak_gpu_bytes": peak,
        "peak_gpu_GB": round(peak / 1e9, 2),
        "model_bf16_GB": round(full_bytes / 1e9, 2),
        "peak_over_model": round(peak / full_bytes, 3),
        "quantized_model_GB": round(model_bytes(model) / 1e9, 2),
        "forward_finite": bool(torch.isfinite(logits).all()),
        "init_seconds": round(init_s, 1),
        "gpu": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "command": "python " + " ".join(sys.argv),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
