"""Small real Hugging Face models and seeded inputs shared by the method tests."""

import zlib

import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM


def make_gen(*key) -> torch.Generator:
    """A generator seeded from any key: fresh, reproducible inputs per test and parameter."""
    return torch.Generator().manual_seed(zlib.crc32(repr(key).encode()))


def tiny_gpt2(seed=0, layers=2):
    torch.manual_seed(seed)
    cfg = GPT2Config(n_layer=layers, n_embd=64, n_head=4, vocab_size=256, n_positions=64, bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(cfg).eval()


def tiny_llama(seed=0, layers=2):
    torch.manual_seed(seed)
    cfg = LlamaConfig(num_hidden_layers=layers, hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2, vocab_size=256)
    return LlamaForCausalLM(cfg).eval()


MODELS = {"gpt2": tiny_gpt2, "llama": tiny_llama}


def token_ids(key, n=16, length=32):
    return torch.randint(0, 256, (n, length), generator=make_gen("ids", key))


@torch.no_grad()
def logits(model, ids):
    return model(ids).logits


def train_losses(model, ids, opt, steps: int) -> list[float]:
    """The loss of each of `steps` optimizer steps of causal-LM training on `ids`."""
    losses = []
    for _ in range(steps):
        loss = model(ids, labels=ids).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses
