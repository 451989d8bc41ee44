"""What a training step keeps for its backward, per precision: the bytes of the tensors autograd saves in a
llama2-1b-shaped model (dim 1536, FFN 6144, 24 heads; `--layers` decoder layers, `--tokens` tokens), compiled as
`lowbit train` compiles it (its decoder blocks, no CUDA graphs), counted through `saved_tensors_hooks` on the second
step (each storage once). Runs on the CPU (the ops' reference paths; the compiled graph saves what Inductor's
partitioner chose for the same ops).

    python3 benchmarks/saved_tensors.py --layers 2 --tokens 256

Session 16 (CPU, torch 2.13): per token, 2 layers, activations only: bf16 149.2 KB, int8 133.9, fp8-rowwise 155.4,
fp8-tensorwise 112.4. int8 saves the column codes of the four inputs of its linears (x, the attention's output, the
MLP's input, silu(g)·u: 10.75 KB a token a layer), where fp8-tensorwise's torch-op quantization lets the partitioner
recompute them from tensors kept anyway (the residual stream, g and u): ~8.5 GB at 24 layers and 16 × 2048 tokens,
the gap between their peaks on the H200 (session 15: 71.0 against 62.7 GB reserved). The price of not re-quantizing
in the backward.
"""

from __future__ import annotations

import argparse
from collections import Counter

import torch


def saved_bytes(precision: str, layers: int, tokens: int) -> tuple[int, int, Counter]:
    """(activation bytes, other bytes, activation tensors by dtype and shape) saved by one forward."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    from lowbit.train import convert
    from lowbit.train.loop import compile_blocks

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=256, hidden_size=1536, intermediate_size=6144, num_hidden_layers=layers, num_attention_heads=24,
                      num_key_value_heads=24, max_position_embeddings=max(2048, tokens), tie_word_embeddings=False)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    if precision != "bf16":
        convert(model, precision)
    torch._dynamo.reset()
    model = compile_blocks(model)
    x = torch.randint(0, 256, (1, tokens))
    for _ in range(2):  # the first step compiles
        seen, sizes = set(), []

        def pack(t: torch.Tensor) -> torch.Tensor:
            key = (t.untyped_storage().data_ptr(), t.dtype)
            if key not in seen:
                seen.add(key)
                sizes.append((t.untyped_storage().nbytes(), str(t.dtype), tuple(t.shape)))
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), torch.autocast("cpu", torch.bfloat16):
            loss = model(x, labels=x).loss
        loss.backward()
    act = [s for s in sizes if tokens in s[2]]  # a dim of the token count: activations, not weights
    return sum(s[0] for s in act), sum(s[0] for s in sizes) - sum(s[0] for s in act), Counter((d, sh) for _, d, sh in act)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--tokens", type=int, default=256)
    p.add_argument("--precisions", nargs="+", default=["bf16", "int8", "fp8-rowwise", "fp8-tensorwise"])
    args = p.parse_args()
    for precision in args.precisions:
        act, other, kinds = saved_bytes(precision, args.layers, args.tokens)
        print(f"{precision:16} activations {act / args.tokens / 1e3:.1f} KB a token; weights and the rest {other / 1e6:.1f} MB")
        for (dtype, shape), n in sorted(kinds.items(), key=lambda kv: -kv[1]):
            print(f"    {n} x {dtype} {shape}")


if __name__ == "__main__":
    main()
