"""add_outlier_features: a few huge activation channels, the same in every block, planted without
changing the model's float function."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import copy
import functools

import pytest
import torch
from torch import nn

from lowbit.models.norms import norm_groups
from lowbit.models.outliers import add_outlier_features

from tiny_models import MODELS as TWO_BLOCK_MODELS
from tiny_models import tiny_gpt2, tiny_llama, token_ids

pytestmark = pytest.mark.usefixtures("one_thread")

# three blocks, so "the same channels in every block" is checked on more than two
MODELS = {arch: functools.partial(build, layers=3) for arch, build in TWO_BLOCK_MODELS.items()}


@torch.no_grad()
def consumer_inputs(model, ids, names=None):
    """Input of every linear fed by a norm (the untied LM head included), by name."""
    seen = {}
    names = names or [c for _, _, consumers in norm_groups(model) for c in consumers]
    hooks = [model.get_submodule(c).register_forward_hook(lambda m, args, out, c=c: seen.__setitem__(c, args[0].detach().reshape(-1, args[0].shape[-1])))
             for c in names]
    try:
        out = model(ids).logits
    finally:
        for h in hooks:
            h.remove()
    return out, seen


@pytest.mark.parametrize("factor", [40.0, 1.5])
@pytest.mark.parametrize("arch", sorted(MODELS))
def test_float_function_unchanged(arch, factor):
    """Gain and bias of each norm ×c, the consumers' input rows ×1/c: c is not a power of two, so both
    products round in float32 (relative 2^-24 ≈ 6e-8 each). A relative perturbation ~1e-7 per
    weight reaches the logits at the same order through 3 blocks (~2-3e-7 of max|logits| measured);
    we allow 1e-5 of max|logits|, still far below any quantization effect."""
    base = MODELS[arch](1)
    model = copy.deepcopy(base)
    add_outlier_features(model, channels=4, factor=factor)
    ids = token_ids((arch, "float"))
    with torch.no_grad():
        before, after = base(ids).logits, model(ids).logits
    assert (after - before).abs().max() <= 1e-5 * before.abs().max()
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, base.get_parameter(n))]
    assert changed  # the weights really changed
    # the head was untied from the input embedding, which keeps its float values
    assert model.lm_head.weight is not model.get_input_embeddings().weight
    torch.testing.assert_close(model.get_input_embeddings().weight, base.get_input_embeddings().weight, rtol=0, atol=0)


@pytest.mark.parametrize("arch", sorted(MODELS))
def test_outlier_channels_are_factor_times_larger_in_every_block(arch):
    base = MODELS[arch](2)
    model = copy.deepcopy(base)
    factor = 40.0
    picked = add_outlier_features(model, channels=4, factor=factor, seed=3)
    assert picked == sorted(set(picked)) and len(picked) == 4 and all(0 <= p < 64 for p in picked)
    others = [j for j in range(64) if j not in picked]
    ids = token_ids((arch, "act"))
    _, out_in = consumer_inputs(model, ids)
    _, float_in = consumer_inputs(base, ids, list(out_in))
    assert len(out_in) == 3 * (2 if arch == "gpt2" else 5) + 1  # per block: c_attn, c_fc / q, k, v, gate, up; the head
    blocks = {name.split(".")[2] for name in out_in if name != "lm_head"}
    assert len(blocks) == 3
    for name, x in out_in.items():
        xf = float_in[name]
        scale = xf.abs().max().item()
        # the picked channels are exactly factor × the float model's (the residual stream is the same)
        torch.testing.assert_close(x[:, picked], factor * xf[:, picked], rtol=1e-4, atol=1e-5 * factor * scale)
        torch.testing.assert_close(x[:, others], xf[:, others], rtol=1e-4, atol=1e-5 * scale)
        # so per channel, the largest activations are those 4 — the same channels in every block
        top = x.abs().mean(dim=0).topk(4).indices.sort().values.tolist()
        assert top == picked, name
        ratio = x[:, picked].abs().mean() / x[:, others].abs().mean()
        assert ratio > 10, (name, ratio)


def test_channel_choice_depends_on_seed_only():
    a, b, c = tiny_gpt2(4), tiny_gpt2(5), tiny_gpt2(4)
    pa = add_outlier_features(a, channels=6, seed=7)
    pb = add_outlier_features(b, channels=6, seed=7)
    pc = add_outlier_features(c, channels=6, seed=8)
    assert pa == pb and pa != pc


@pytest.mark.parametrize("channels", [0, -1, 65])
def test_bad_channel_count(channels):
    model = tiny_gpt2()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="channels"):
        add_outlier_features(model, channels=channels)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # untouched


def test_all_channels_allowed():
    model = tiny_gpt2(layers=1)
    assert add_outlier_features(model, channels=64, factor=2.0) == list(range(64))


@pytest.mark.parametrize("factor", [1.0, 0.5, 0.0, -3.0, float("nan")])
def test_bad_factor(factor):
    with pytest.raises(ValueError, match="factor"):
        add_outlier_features(tiny_llama(layers=1), channels=2, factor=factor)


def test_model_without_norms():
    class Blocks(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(8, 8) for _ in range(3)])

    for model in (nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8)), Blocks()):
        with pytest.raises(ValueError, match="norm"):
            add_outlier_features(model, channels=2)
