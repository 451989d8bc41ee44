"""lowbit.quantize / save / load on tiny GPT-2 (Conv1D, tied lm_head) and Llama (nn.Linear)."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM
from transformers.pytorch_utils import Conv1D

import lowbit
from lowbit.formats.error import sqnr
from lowbit.layers import FP8Linear, IntWeightLinear, KMeansLinear, LLMInt8Linear, NF4Linear, QuantLinear, W8A8Linear
from lowbit.measure import model_bytes

from tiny_models import train_losses

METHODS = [
    ("rtn8", lowbit.RTN(8), IntWeightLinear),
    ("rtn4-g32-asym", lowbit.RTN(4, "group", 32, False), IntWeightLinear),
    ("rtn3-g32", lowbit.RTN(3, "group", 32), IntWeightLinear),
    ("rtn2-ch", lowbit.RTN(2, "channel"), IntWeightLinear),
    ("nf4", lowbit.NF4(64), NF4Linear),
    ("nf4-dq", lowbit.NF4(64, True), NF4Linear),
    ("fp8-e4m3", lowbit.FP8("e4m3"), FP8Linear),
    ("fp8-e5m2-tensor", lowbit.FP8("e5m2", "tensor"), FP8Linear),
    ("w8a8", lowbit.W8A8(), W8A8Linear),
    ("w8a8-tensor", lowbit.W8A8("tensor"), W8A8Linear),
    ("llm-int8", lowbit.LLMInt8(), LLMInt8Linear),
    ("kmeans4", lowbit.KMeans(4), KMeansLinear),
]
IDS = [m[0] for m in METHODS]


def tiny_gpt2(seed=0):
    torch.manual_seed(seed)
    cfg = GPT2Config(n_layer=4, n_embd=64, n_head=4, vocab_size=256, n_positions=64, bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(cfg).eval()


def tiny_llama(seed=0, layers=4):
    torch.manual_seed(seed)
    cfg = LlamaConfig(num_hidden_layers=layers, hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2, vocab_size=256)
    return LlamaForCausalLM(cfg).eval()


MODELS = {"gpt2": tiny_gpt2, "llama": tiny_llama}


def input_ids(seed=1):
    return torch.randint(0, 256, (2, 24), generator=torch.Generator().manual_seed(seed))


def logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


def buffer_bytes(module) -> int:
    return sum(b.numel() * b.element_size() for b in module.buffers())


def param_bytes(module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


@pytest.mark.parametrize("select", ["all", "no-lm_head", "qkv", "last:2,lm_head", "*.mlp.*"])
@pytest.mark.parametrize("arch", sorted(MODELS))
def test_quantize_replaces_exactly_the_selected_modules(arch, select):
    model = MODELS[arch]()
    before_modules = dict(model.named_modules())
    before_state = {k: v.clone() for k, v in model.state_dict().items()}
    selected = lowbit.select_modules(model, select)
    float_cls = Conv1D if arch == "gpt2" else nn.Linear
    out = lowbit.quantize(model, lowbit.RTN(8), select=select)
    assert out is model
    after_modules = dict(model.named_modules())
    quantized = {n for n, m in after_modules.items() if isinstance(m, QuantLinear)}
    assert quantized == set(selected)
    for name in selected:
        layer = after_modules[name]
        assert type(layer) is IntWeightLinear and layer.bits == 8
        old = before_modules[name]
        w = old.weight.detach().t() if isinstance(old, Conv1D) else old.weight.detach()
        assert (layer.in_features, layer.out_features) == (w.shape[1], w.shape[0])
        # the stored weight is the original (transposed for Conv1D) within half a step
        step = w.abs().amax(1, keepdim=True) / 127
        assert ((layer.dequantize_weight() - w).abs() <= step * (0.5 + 1e-4)).all()
        if old.bias is not None:
            assert torch.equal(layer.bias, old.bias.detach())
        else:
            assert layer.bias is None
    # everything else is the very same float module with unchanged tensors
    for name, old in before_modules.items():
        if any(name == s or name.startswith(s + ".") for s in selected):
            continue
        assert after_modules[name] is old
        if name.split(".")[-1] in ("c_attn", "c_proj", "c_fc", "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"):
            assert type(old) is (nn.Linear if name == "lm_head" else float_cls)
    after_state = model.state_dict()
    for k, v in before_state.items():
        owner = k.rsplit(".", 1)[0]
        if owner in selected:
            continue
        assert torch.equal(after_state[k], v), k
    # and the quantized model still computes something close to the float one
    assert torch.isfinite(logits(model, input_ids())).all()


def test_quantized_model_output_close_to_float():
    """8-bit weights everywhere: ~43 dB per layer; through 4 blocks the logits stay > 25 dB."""
    ids = input_ids()
    for make in MODELS.values():
        ref = logits(make(), ids)
        q = lowbit.quantize(make(), lowbit.RTN(8))
        assert sqnr(ref, logits(q, ids)) > 25


def test_lm_head_on_tied_gpt2_unties_and_adds_its_bytes():
    model = tiny_gpt2()
    wte = model.transformer.wte.weight
    assert model.config.tie_word_embeddings and model.lm_head.weight is wte
    wte_before = wte.detach().clone()
    bytes_before = model_bytes(model)
    ids = input_ids()
    float_logits = logits(model, ids)
    hidden = model.transformer(ids).last_hidden_state.detach()

    lowbit.quantize(model, lowbit.RTN(8), select="lm_head")
    assert isinstance(model.lm_head, IntWeightLinear)
    assert model.transformer.wte.weight is wte  # the embedding is kept, in float
    assert torch.equal(model.transformer.wte.weight, wte_before)
    assert model.config.tie_word_embeddings is False
    assert model_bytes(model) == bytes_before + buffer_bytes(model.lm_head)
    assert buffer_bytes(model.lm_head) == 256 * 64 + 256 * 4  # int8 codes + per-row scales
    # the transformer body is untouched; the logits come from the quantized head
    q_logits = logits(model, ids)
    torch.testing.assert_close(q_logits, F.linear(hidden, model.lm_head.dequantize_weight()), rtol=1e-5, atol=1e-5)
    assert sqnr(float_logits, q_logits) > 30
    assert not torch.equal(q_logits, float_logits)


@pytest.mark.parametrize("arch", sorted(MODELS))
def test_qkv_only_changes_only_those_layers_bytes(arch):
    model = MODELS[arch]()
    names = lowbit.select_modules(model, "qkv")
    old = {n: model.get_submodule(n) for n in names}
    others = {n: m for n, m in model.named_modules() if n not in names and isinstance(m, (nn.Linear, Conv1D))}
    bytes_before = model_bytes(model)
    lowbit.quantize(model, lowbit.NF4(64), select="qkv")
    delta = sum(buffer_bytes(model.get_submodule(n)) - param_bytes(old[n]) for n in names)
    assert delta < 0
    assert model_bytes(model) == bytes_before + delta
    for n, m in others.items():
        assert model.get_submodule(n) is m


@pytest.mark.parametrize("method,cls", [(m[1], m[2]) for m in METHODS], ids=IDS)
@pytest.mark.parametrize("arch", sorted(MODELS))
def test_save_load_round_trip_identical_logits(arch, method, cls, tmp_path):
    model = lowbit.quantize(MODELS[arch](), method, select="all")
    ids = input_ids()
    before = logits(model, ids)
    lowbit.save(model, tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["lowbit.json", "model.safetensors"]
    assert not any(p.suffix in (".bin", ".pt", ".pth", ".pkl", ".pickle") for p in tmp_path.rglob("*"))
    description = json.loads((tmp_path / "lowbit.json").read_text())
    assert set(description["layers"]) == set(lowbit.select_modules(MODELS[arch](), "all"))
    assert {spec["class"] for spec in description["layers"].values()} == {cls.__name__}

    loaded = lowbit.load(tmp_path)
    assert not loaded.training
    assert type(loaded) is type(model)
    for name, m in model.named_modules():
        assert type(loaded.get_submodule(name)) is type(m), name
    sd, sd_loaded = model.state_dict(), loaded.state_dict()
    assert sd.keys() == sd_loaded.keys()
    for k in sd:
        assert sd[k].dtype == sd_loaded[k].dtype and torch.equal(sd[k], sd_loaded[k]), k
    assert torch.equal(logits(loaded, ids), before)
    if arch == "gpt2":
        # lm_head was quantized: the loaded model keeps its float embedding, untied
        assert loaded.config.tie_word_embeddings is False
        assert torch.equal(loaded.transformer.wte.weight, model.transformer.wte.weight)


def test_save_load_of_partly_quantized_tied_gpt2(tmp_path):
    """Quantizing only the body keeps GPT-2's lm_head tied to wte; that survives save/load."""
    model = lowbit.quantize(tiny_gpt2(), lowbit.NF4(64, True), select="no-lm_head")
    assert model.lm_head.weight is model.transformer.wte.weight
    ids = input_ids()
    lowbit.save(model, tmp_path)
    loaded = lowbit.load(tmp_path)
    assert torch.equal(logits(loaded, ids), logits(model, ids))
    assert torch.equal(loaded.lm_head.weight, model.lm_head.weight)


def test_load_errors(tmp_path):
    with pytest.raises(ValueError, match="not a directory"):
        lowbit.load(tmp_path / "missing")
    with pytest.raises(ValueError, match="lowbit.json"):
        lowbit.load(tmp_path)
    model = lowbit.quantize(tiny_llama(), lowbit.RTN(8), select="qkv")
    lowbit.save(model, tmp_path / "m")
    os.remove(tmp_path / "m" / "lowbit.json")
    with pytest.raises(ValueError, match="lowbit.json"):
        lowbit.load(tmp_path / "m")


def test_save_requires_a_hf_model(tmp_path):
    model = nn.Sequential(nn.Linear(64, 64))
    lowbit.quantize(model, lowbit.RTN(8))
    with pytest.raises(ValueError, match="config"):
        lowbit.save(model, tmp_path)


@pytest.mark.parametrize("bad", ["int3", "no-such-method", "", 42, None, object(), {"bits": 8}])
def test_unknown_or_non_method_raises_value_error(bad):
    model = tiny_llama()
    with pytest.raises(ValueError, match="method"):
        lowbit.quantize(model, bad)
    assert not any(isinstance(m, QuantLinear) for m in model.modules())


@pytest.mark.parametrize("cls", [lowbit.RTN, lowbit.NF4, lowbit.KMeans])
def test_method_class_instead_of_instance_raises_value_error(cls):
    """A config class (not an instance) has a callable `layer` attribute but is not a method
    config; it must be refused up front with a ValueError, not fail inside the layer loop."""
    model = tiny_gpt2()
    with pytest.raises(ValueError, match="method"):
        lowbit.quantize(model, cls)
    assert not any(isinstance(m, QuantLinear) for m in model.modules())
    assert model.config.tie_word_embeddings is True


@pytest.mark.parametrize("arch,name", [("llama", "model.layers.2.mlp.up_proj"), ("gpt2", "transformer.h.1.attn.c_proj")])
def test_nan_weight_raises_naming_the_module(arch, name):
    model = MODELS[arch]()
    with torch.no_grad():
        model.get_submodule(name).weight[3, 5] = float("nan")
    with pytest.raises(ValueError, match=name.replace(".", r"\.")):
        lowbit.quantize(model, lowbit.RTN(8))


@pytest.mark.parametrize(
    "name,cls,check",
    [
        ("int8", IntWeightLinear, lambda m: m.bits == 8 and m.granularity == "channel" and m.symmetric),
        ("INT8", IntWeightLinear, lambda m: m.bits == 8),
        ("rtn", IntWeightLinear, lambda m: m.bits == 8),
        ("nf4", NF4Linear, lambda m: m.block_size == 64 and not m.double_quant),
        ("fp8", FP8Linear, lambda m: m.fmt == "e4m3"),
        ("w8a8", W8A8Linear, lambda m: m.act_granularity == "token"),
        ("llm_int8", LLMInt8Linear, lambda m: m.threshold == 6.0),
        ("kmeans", KMeansLinear, lambda m: m.bits == 4),
    ],
)
def test_quantize_by_name(name, cls, check):
    model = lowbit.quantize(tiny_gpt2(), name, select="no-lm_head")
    layers = [m for m in model.modules() if isinstance(m, QuantLinear)]
    assert len(layers) == 16
    assert all(type(m) is cls and check(m) for m in layers)


def test_int4_by_name_needs_group_dividing_the_dim():
    """The "int4" preset uses groups of 128; the tiny models' 64-wide layers cannot take them."""
    with pytest.raises(ValueError, match="group_size"):
        lowbit.quantize(tiny_llama(), "int4")
    model = lowbit.quantize(tiny_llama(), "int4", select="*.down_proj")  # in_features 128
    layer = model.model.layers[0].mlp.down_proj
    assert type(layer) is IntWeightLinear and layer.bits == 4 and layer.group_size == 128 and not layer.symmetric


def tiny_llama_odd_dims(seed=0):
    """hidden 36 (2 heads of 18), intermediate 60: no layer's in_features is a multiple of 8."""
    torch.manual_seed(seed)
    cfg = LlamaConfig(num_hidden_layers=2, hidden_size=36, intermediate_size=60, num_attention_heads=2, num_key_value_heads=1, vocab_size=64)
    return LlamaForCausalLM(cfg).eval()


@pytest.mark.parametrize(
    "method",
    [lowbit.RTN(8), lowbit.RTN(3, "channel"), lowbit.RTN(6, "tensor", None, False), lowbit.KMeans(8), lowbit.KMeans(2), lowbit.FP8(), lowbit.W8A8(), lowbit.LLMInt8()],
    ids=["rtn8", "rtn3", "rtn6-asym-tensor", "kmeans8", "kmeans2", "fp8", "w8a8", "llm-int8"],
)
def test_save_load_round_trip_with_in_features_not_multiple_of_8(method, tmp_path):
    model = lowbit.quantize(tiny_llama_odd_dims(), method)
    ids = torch.randint(0, 64, (2, 10), generator=torch.Generator().manual_seed(3))
    lowbit.save(model, tmp_path)
    loaded = lowbit.load(tmp_path)
    assert torch.equal(logits(loaded, ids), logits(model, ids))


class _LoRA(torch.nn.Module):
    """A low-rank adapter beside a frozen (here quantized) linear: base(x) + B(A(x)), B zero at the start."""

    def __init__(self, base: torch.nn.Module, rank: int = 4):
        super().__init__()
        self.base = base
        self.a = torch.nn.Linear(base.in_features, rank, bias=False)
        self.b = torch.nn.Linear(rank, base.out_features, bias=False)
        torch.nn.init.zeros_(self.b.weight)

    def forward(self, x):
        return self.base(x) + self.b(self.a(x))


@pytest.mark.parametrize("method", [lowbit.RTN(bits=4, granularity="group", group_size=32, symmetric=False), lowbit.NF4(block_size=64)],
                         ids=["int4-g32", "nf4"])
def test_adapters_train_on_a_quantized_base(method):
    """QLoRA's setting: adapters on the attention projections of a 4-bit llama learn (the loss falls) through the
    quantized layers' backward, and the quantized storage is left exactly as it was. Two blocks: the first one's
    adapters learn through the second's quantized layers, as with four (each quantized layer's forward and backward
    dequantize in the Triton interpreter on CPU, so that cost grows with the blocks: ~16 s of int4-g32's ~32 s)."""
    model = tiny_llama(seed=3, layers=2)
    lowbit.quantize(model, method, "no-lm_head")
    for p in model.parameters():
        p.requires_grad_(False)
    for layer in model.model.layers:
        layer.self_attn.q_proj = _LoRA(layer.self_attn.q_proj)
        layer.self_attn.v_proj = _LoRA(layer.self_attn.v_proj)
    stored = {k: v.clone() for k, v in model.state_dict().items() if "base" in k}
    adapters = [p for n, p in model.named_parameters() if ".a." in n or ".b." in n]
    for p in adapters:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(adapters, lr=1e-2)
    ids = input_ids(7)
    model.train()
    losses = train_losses(model, ids, opt, 8)
    assert losses[-1] < losses[0] - 0.05, losses
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in stored.items())
