"""Session 19 (one-off): the decode step's attention. Call 2's profile put cuDNN's SDPA kernel at 8.3 µs a layer of
the 7B decode step (one query over a 256-slot static cache, 32 heads, grid [1, 32, 1]), ~10 % of W4A16's step. A
4-layer model of the 7B shapes, bf16, layers compiled and the step a CUDA graph as `bench generate` runs it, per
attention implementation: µs a step and the kernels' µs.

    python benchmarks/_exp_decode_attention.py out.json
"""
import contextlib
import json
import sys

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from lowbit.bench import generate as g
from profile_kernels import kernel_times

VARIANTS = {"sdpa": ("sdpa", None), "eager": ("eager", None), "sdpa-efficient": ("sdpa", [SDPBackend.EFFICIENT_ATTENTION]),
            "sdpa-math": ("sdpa", [SDPBackend.MATH]), "sdpa-cudnn": ("sdpa", [SDPBackend.CUDNN_ATTENTION])}
result = {}
for name, (impl, backends) in VARIANTS.items():
    from transformers import AutoModelForCausalLM, LlamaConfig

    try:
        config = LlamaConfig(**{**g.LLAMA2, **g.MODELS["7b"], "num_hidden_layers": 4})
        torch.manual_seed(0)
        with torch.device("cuda"):
            model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16, attn_implementation=impl).eval()
        prompt = torch.randint(3, 32000, (1, 128), generator=torch.Generator().manual_seed(1))
        ctx = sdpa_kernel(backends) if backends else contextlib.nullcontext()
        with ctx:
            gen = g.StaticGenerator(model, 1, 128, 128, graph=True, compile=True)
            gen.warmup(prompt)
            tokens, t = gen.generate(prompt)
            tokens2, t = gen.generate(prompt)
            gen.prefill(prompt)  # the cache counts its own position: back to the prompt's end before more steps
            times = kernel_times(lambda: (gen.position.fill_(130), gen.step_index.fill_(2), gen.step()), 5)
        result[name] = dict(ms_per_step=1e3 * t["decode_s"] / 127, mode=gen.mode, tokens=tokens2[0, :16].tolist(),
                            kernels_us={k: round(v, 1) for k, v in list(times.items())[:12]})
        print(name, json.dumps(result[name]), flush=True)
    except Exception as e:
        result[name] = {"error": f"{type(e).__name__}: {str(e)[:200]}"}
        print(name, result[name], flush=True)
    torch.cuda.empty_cache()
json.dump(result, open(sys.argv[1], "w"), indent=1)
