"""`fuse_projections`: q/k/v and gate/up as one linear each. The reference is the same model unfused: in float64 the
logits agree to summation order, and a row-wise quantization of the fused weight is its parts' codes and scales."""

import pytest
import torch
from tiny_models import make_gen, tiny_gpt2, tiny_llama, token_ids
from transformers import LlamaConfig, LlamaForCausalLM

import lowbit
from lowbit.models.fuse import Columns, fuse_projections


def _llama(seed: int, bias: bool) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(num_hidden_layers=2, hidden_size=64, intermediate_size=96, num_attention_heads=4, num_key_value_heads=2,
                      vocab_size=256, attention_bias=bias, mlp_bias=bias)
    return LlamaForCausalLM(cfg).eval()


@pytest.mark.parametrize("bias", [False, True])
def test_fused_llama_gives_the_unfused_logits(one_thread, bias):
    seed = int(torch.randint(0, 2**31, (1,), generator=make_gen("fuse", bias)))
    model, fused = _llama(seed, bias).double(), _llama(seed, bias).double()
    assert fuse_projections(fused) == 4  # two layers, attention and MLP each
    attn = fused.model.layers[0].self_attn
    assert type(attn).__name__ == "FusedLlamaAttention" and isinstance(attn.k_proj, Columns)
    assert attn.qkv_proj.out_features == 64 + 2 * 32 and fused.model.layers[1].mlp.gate_up_proj.out_features == 2 * 96
    ids = token_ids(("fuse", bias), n=3, length=11)
    with torch.no_grad():
        ref, out = model(ids).logits, fused(ids).logits
    assert (out - ref).norm() / ref.norm() < 1e-12
    assert fuse_projections(fused) == 0  # fused already: left as it is


def test_a_quantized_fused_weight_is_its_parts_codes_and_scales(one_thread):
    model, fused = tiny_llama(seed=3), tiny_llama(seed=3)
    fuse_projections(fused)
    method = lowbit.RTN(bits=4, granularity="group", group_size=32, symmetric=False)
    lowbit.quantize(model, method, "no-lm_head")
    lowbit.quantize(fused, method, "no-lm_head")
    for i in range(2):
        for fused_name, module, parts in [("qkv_proj", "self_attn", ("q_proj", "k_proj", "v_proj")),
                                          ("gate_up_proj", "mlp", ("gate_proj", "up_proj"))]:
            whole = getattr(getattr(fused.model.layers[i], module), fused_name).state_dict()
            pieces = [getattr(getattr(model.model.layers[i], module), p).state_dict() for p in parts]
            assert whole.keys() == pieces[0].keys() and whole
            for key, value in whole.items():
                assert torch.equal(value, torch.cat([p[key] for p in pieces])), key
    ids = token_ids("fuse-q", n=2, length=9)
    with torch.no_grad():
        ref, out = model(ids).logits, fused(ids).logits
    assert (out - ref).norm() / ref.norm() < 1e-5  # fp32, the same codes: summation order only


def test_a_saved_fused_model_loads_fused(tmp_path, one_thread):
    model = tiny_llama(seed=5)
    fuse_projections(model)
    lowbit.quantize(model, lowbit.RTN(bits=8), "no-lm_head")
    lowbit.save(model, tmp_path / "m")
    back = lowbit.load(tmp_path / "m")
    assert isinstance(back.model.layers[0].mlp.up_proj, Columns)
    ids = token_ids("fuse-save", n=2, length=7)
    with torch.no_grad():
        assert torch.equal(back(ids).logits, model(ids).logits)


def test_gpt2_has_nothing_to_fuse():
    model = tiny_gpt2()
    assert fuse_projections(model) == 0  # its c_attn is one Conv1D already


def test_fusing_quantized_projections_is_refused(one_thread):
    model = lowbit.quantize(tiny_llama(), lowbit.RTN(bits=8), "no-lm_head")
    with pytest.raises(ValueError, match="fuse before quantizing"):
        fuse_projections(model)


def test_projections_of_different_inputs_are_refused():
    model = tiny_llama()
    mlp = model.model.layers[0].mlp
    mlp.up_proj = torch.nn.Linear(32, mlp.up_proj.out_features, bias=False)
    with pytest.raises(ValueError, match="cannot be one matmul"):
        fuse_projections(model)


def test_cross_attention_is_left_unfused(one_thread):
    """BART's attention can read the encoder's states for k and v (`key_value_states`): one matmul of q/k/v would
    be wrong there, so it stays as it is (and its MLP has no gate/up pair)."""
    from transformers import BartConfig, BartForCausalLM

    cfg = BartConfig(vocab_size=64, d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                     decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64)
    model = BartForCausalLM(cfg)
    assert fuse_projections(model) == 0
    assert type(model.model.decoder.layers[0].self_attn).__name__ == "BartAttention"


@pytest.mark.parametrize("act_order", [False, True])
def test_gptq_on_the_fused_model_gives_the_parts_codes(one_thread, act_order):
    """GPTQ's Hessian is its input's, which q, k and v share: the fused linear gets exactly the codes, scales and
    (act-order) column order GPTQ gives each part, so the fused model's logits are the unfused one's."""
    cal, held = token_ids("fuse-gptq-cal", n=8, length=32), token_ids(("fuse-gptq-held", act_order), n=2, length=16)
    model, fused = tiny_llama(seed=4), tiny_llama(seed=4)
    fuse_projections(fused)
    method = lowbit.GPTQ(bits=4, group_size=32, act_order=act_order)
    lowbit.quantize(model, method, "no-lm_head", calibration=cal)
    lowbit.quantize(fused, method, "no-lm_head", calibration=cal)
    for i in range(2):
        whole = fused.model.layers[i].self_attn.qkv_proj.state_dict()
        parts = [getattr(model.model.layers[i].self_attn, p).state_dict() for p in ("q_proj", "k_proj", "v_proj")]
        for key, value in whole.items():  # the column order is the input's, one for all three
            assert torch.equal(value, parts[0][key] if key == "perm" else torch.cat([p[key] for p in parts])), (i, key)
    with torch.no_grad():
        ref, out = model(held).logits, fused(held).logits
    assert (out - ref).norm() / ref.norm() < 1e-5  # fp32, the same codes: summation order only


def test_a_module_that_reads_its_input_otherwise_is_left_unfused():
    """Replacing the input by q/k/v's fused output would feed gate/up the wrong tensor (and the other way round)."""

    class Both(torch.nn.Module):
        def __init__(self):
            super().__init__()
            for name in ("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj"):
                setattr(self, name, torch.nn.Linear(8, 8))

        def forward(self, x):
            return self.q_proj(x) + self.k_proj(x) + self.v_proj(x) + self.gate_proj(x) * self.up_proj(x)

    torch.manual_seed(0)
    module, x = Both(), torch.randn(3, 8)
    want = module(x)
    assert fuse_projections(module) == 0 and isinstance(module.q_proj, torch.nn.Linear)
    torch.testing.assert_close(module(x), want)


@pytest.mark.parametrize("arch", ["mistral", "qwen2", "qwen3"])
def test_other_llama_family_models_fuse_and_keep_their_logits(arch, one_thread):
    """Models whose attention and MLP read their input only through the projections (Qwen2's q/k/v with biases,
    Qwen3's norms on q and k after them): fused in float64, the same logits."""
    import transformers

    cls = {"mistral": "Mistral", "qwen2": "Qwen2", "qwen3": "Qwen3"}[arch]
    cfg = getattr(transformers, f"{cls}Config")(num_hidden_layers=2, hidden_size=64, intermediate_size=96, num_attention_heads=4,
                                                num_key_value_heads=2, vocab_size=256, head_dim=16)
    torch.manual_seed(11)
    model = getattr(transformers, f"{cls}ForCausalLM")(cfg).eval().double()
    ids = token_ids(("fuse-arch", arch), n=2, length=10)
    with torch.no_grad():
        ref = model(ids).logits
        assert fuse_projections(model) == 4
        out = model(ids).logits
    assert (out - ref).norm() / ref.norm() < 1e-12


def test_only_the_leading_dims_of_the_input_may_be_read():
    """`x.shape[:-1]` is the fused output's too; `x.shape[-1]` (the width) is not, so that module stays unfused."""

    def attention(width_read: bool):
        class Attn(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.q_proj, self.k_proj, self.v_proj = (torch.nn.Linear(8, 8) for _ in range(3))

            if width_read:
                def forward(self, x):
                    return (self.q_proj(x) + self.k_proj(x) * self.v_proj(x)) / x.shape[-1]
            else:
                def forward(self, x):
                    return (self.q_proj(x) + self.k_proj(x) * self.v_proj(x)).reshape(*x.shape[:-1], 2, 4)

        return Attn()

    torch.manual_seed(1)
    x = torch.randn(2, 3, 8)
    for width_read, fused in [(True, 0), (False, 1)]:
        module = attention(width_read)
        want = module(x)
        assert fuse_projections(module) == fused
        torch.testing.assert_close(module(x), want)
