"""Layer selection (lowbit.select_modules) on tiny GPT-2 (Conv1D, tied lm_head) and Llama."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest
import torch
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from lowbit import select_modules

N_LAYER = 4


@pytest.fixture(scope="module")
def gpt2():
    torch.manual_seed(0)
    cfg = GPT2Config(n_layer=N_LAYER, n_embd=64, n_head=4, vocab_size=256, n_positions=64, bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(cfg).eval()


@pytest.fixture(scope="module")
def llama():
    torch.manual_seed(0)
    cfg = LlamaConfig(num_hidden_layers=N_LAYER, hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2, vocab_size=256)
    return LlamaForCausalLM(cfg).eval()


def gpt2_names(blocks=range(N_LAYER), parts=("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")):
    return [f"transformer.h.{i}.{p}" for i in blocks for p in parts]


LLAMA_PARTS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


def llama_names(blocks=range(N_LAYER), parts=LLAMA_PARTS):
    return [f"model.layers.{i}.{p}" for i in blocks for p in parts]


def test_gpt2_presets(gpt2):
    everything = gpt2_names() + ["lm_head"]
    assert select_modules(gpt2) == everything  # default "all", in model order
    assert select_modules(gpt2, "all") == everything
    assert select_modules(gpt2, "no-lm_head") == gpt2_names()
    assert select_modules(gpt2, "lm_head") == ["lm_head"]
    assert select_modules(gpt2, "last:2") == gpt2_names([2, 3], ("attn.c_attn", "attn.c_proj"))
    assert select_modules(gpt2, "last:1") == gpt2_names([3], ("attn.c_attn", "attn.c_proj"))
    assert select_modules(gpt2, f"last:{N_LAYER}") == gpt2_names(parts=("attn.c_attn", "attn.c_proj"))
    assert select_modules(gpt2, "last:99") == gpt2_names(parts=("attn.c_attn", "attn.c_proj"))
    assert select_modules(gpt2, "qkv") == gpt2_names(parts=("attn.c_attn",))
    assert select_modules(gpt2, "qkv,lm_head") == gpt2_names(parts=("attn.c_attn",)) + ["lm_head"]


def test_llama_presets(llama):
    everything = llama_names() + ["lm_head"]
    assert select_modules(llama, "all") == everything
    assert select_modules(llama, "no-lm_head") == llama_names()
    assert select_modules(llama, "lm_head") == ["lm_head"]
    attn = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj")
    assert select_modules(llama, "last:2") == llama_names([2, 3], attn)
    assert select_modules(llama, "qkv") == llama_names(parts=("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"))


def test_globs_and_exclusions(gpt2, llama):
    assert select_modules(gpt2, "*.mlp.*") == gpt2_names(parts=("mlp.c_fc", "mlp.c_proj"))
    assert select_modules(gpt2, "*.mlp.*,-*.c_proj") == gpt2_names(parts=("mlp.c_fc",))
    assert select_modules(gpt2, "-lm_head") == gpt2_names()  # only exclusions: start from everything
    assert select_modules(gpt2, "-*.c_proj,-lm_head") == gpt2_names(parts=("attn.c_attn", "mlp.c_fc"))
    assert select_modules(gpt2, "all,-qkv") == gpt2_names(parts=("attn.c_proj", "mlp.c_fc", "mlp.c_proj")) + ["lm_head"]
    assert select_modules(gpt2, "transformer.h.1.*") == gpt2_names([1])
    assert select_modules(gpt2, " transformer.h.0.attn.c_attn , lm_head ") == ["transformer.h.0.attn.c_attn", "lm_head"]
    assert select_modules(gpt2, "last:2,-*.c_proj") == gpt2_names([2, 3], ("attn.c_attn",))
    assert select_modules(llama, "model.layers.[02].mlp.*") == llama_names([0, 2], ("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"))
    assert select_modules(llama, "*_proj,-*.mlp.*") == llama_names(parts=LLAMA_PARTS[:4])
    # globs are case-sensitive and whole-name
    with pytest.raises(ValueError):
        select_modules(llama, "Q_PROJ")
    with pytest.raises(ValueError):
        select_modules(llama, "q_proj")


def test_pattern_matching_nothing_names_the_pattern(gpt2, llama):
    with pytest.raises(ValueError, match=r"\*\.q_proj"):
        select_modules(gpt2, "*.q_proj")
    with pytest.raises(ValueError, match="c_attn"):
        select_modules(llama, "qkv,*.c_attn")
    with pytest.raises(ValueError, match="nothing_here"):
        select_modules(gpt2, "all,-nothing_here")


@pytest.mark.parametrize("bad", ["last:x", "last:", "last:0", "last:-1", "last:1.5"])
def test_bad_last_preset(gpt2, bad):
    with pytest.raises(ValueError, match="last"):
        select_modules(gpt2, bad)


@pytest.mark.parametrize("bad", ["", "   "])
def test_empty_select(gpt2, bad):
    with pytest.raises(ValueError, match="select"):
        select_modules(gpt2, bad)


@pytest.mark.parametrize("bad", [",", " , ,"])
def test_select_of_only_separators_is_empty(gpt2, bad):
    """A select string holding no pattern at all is as empty as "": it must not silently mean
    "quantize everything"."""
    with pytest.raises(ValueError, match="select"):
        select_modules(gpt2, bad)


def test_non_string_select(gpt2):
    with pytest.raises(ValueError, match="select"):
        select_modules(gpt2, None)
    with pytest.raises(ValueError, match="select"):
        select_modules(gpt2, ["all"])


def test_selection_excluding_everything(gpt2):
    with pytest.raises(ValueError, match="leaves no layer"):
        select_modules(gpt2, "lm_head,-lm_head")


def test_model_without_quantizable_layers():
    with pytest.raises(ValueError, match="no quantizable layer"):
        select_modules(nn.Sequential(nn.ReLU()))
    with pytest.raises(ValueError, match="no quantizable layer"):
        select_modules(nn.Sequential(nn.Conv2d(3, 3, 1), nn.Embedding(4, 4)), "all")


def test_plain_module_without_lm_head():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 4))
    assert select_modules(model) == ["0", "2"]
    assert select_modules(model, "no-lm_head") == ["0", "2"]
    with pytest.raises(ValueError, match="lm_head"):
        select_modules(model, "lm_head")
