"""RMSNorms fused into the weight-only GEMVs (`models.fused_norms`, the word GEMV's NORM).

References: the kernel against float64 of the norm's equation (x·g/√(mean(x²) + eps), unrounded) times the weight built
from the codes; `rms_norm` against transformers' own `LlamaRMSNorm`, bit for bit; a fused model against itself unfused
(on the CPU the op runs the norm first, so bit for bit; on a GPU the word GEMV does not round the normed x, so within
that rounding). Tolerances as in test_ops_weight_only: the output's rounding to x's dtype plus the fp32 sum's error.
"""

import pytest
import torch
from test_ops_weight_only import DEVICE, check, random_storage, to_dev
from tiny_models import make_gen, tiny_gpt2, token_ids
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.models.llama.modeling_llama import LlamaDecoderLayer, LlamaRMSNorm

import lowbit
from lowbit.models.fuse import fuse_projections
from lowbit.models.fused_norms import computes_rms_norm, feeds_only, fuse_norms
from lowbit.ops import weight_only as ops

pytestmark = pytest.mark.skipif(ops.triton is None, reason="needs triton")


def _normed_ref(x: torch.Tensor, gain: torch.Tensor, eps: float, w: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    xd = x.double()
    return gain.double() * xd / torch.sqrt(xd.pow(2).mean(-1, keepdim=True) + eps) @ w.t() + bias.double()


@pytest.mark.parametrize("bits,symmetric,g,lut", [(4, False, 128, False), (4, True, 64, False), (8, True, None, False),
                                                  (4, False, 64, True)])
def test_word_gemv_applies_the_rms_norm_inside(bits, symmetric, g, lut):
    """Whole K-steps and a masked K tail, one and two tokens, fp16 and bf16, inputs far from unit scale (the 1/rms
    matters); a split-K config is run on one split (each program needs all of x's squares)."""
    gen = make_gen("norm-gemv", bits, symmetric, g, lut)
    n, k = 21, 384
    q, s, z, table, w = random_storage(n, k, bits, g or k, symmetric, gen, lut=lut)
    bias = torch.randn(n, generator=gen)
    words = k * bits // 32
    for m, dtype in [(1, torch.float16), (2, torch.bfloat16)]:
        x = (torch.randn(m, k, generator=gen) * 7).to(dtype)
        gain = (torch.rand(k, generator=gen) + 0.5).to(dtype)
        eps = float(torch.rand((), generator=gen)) * 1e-3
        ref = _normed_ref(x, gain, eps, w, bias)
        xd, qd, sd, zd, td, bd, gd = to_dev(x, q, s, z, table, bias, gain)
        tail = dict(BLOCK_N=4, BLOCK_W=64 if words > 64 else 32, V=1, PREFETCH=False, num_warps=1)
        assert words % tail["BLOCK_W"]
        for config in (None, tail, dict(BLOCK_W=words // 3, SPLIT_K=3)):
            check(ops.gemv_words_triton(xd, qd, sd, zd, bits, g or k, td, bd, config=config, norm=(gd, eps)), ref, dtype, k)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_rms_norm_is_transformers_llama_norm_bit_for_bit(dtype):
    gen = make_gen("rms", str(dtype))
    norm = LlamaRMSNorm(200, eps=1e-5).to(dtype)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(200, generator=gen))
        for scale in (1e-3, 1.0, 300.0):
            x = (torch.randn(5, 200, generator=gen) * scale).to(dtype)
            assert torch.equal(ops.rms_norm(x, norm.weight, 1e-5), norm(x))
    assert computes_rms_norm(norm) and not computes_rms_norm(nn.LayerNorm(200))


def test_op_with_a_norm_equals_the_norm_then_the_op():
    """Every path the op may take here (the word GEMV at one token on a GPU, the swapped kernel at 20, the reference on
    the CPU): with the norm given, as the norm first; the word GEMV within its unrounded input, the others bit for bit."""
    gen = make_gen("norm-op")
    n, k = 40, 256
    q, s, z, _, w = random_storage(n, k, 4, 128, False, gen)
    bias = torch.randn(n, generator=gen)
    for m in (1, 20):
        x = (torch.randn(m, k, generator=gen) * 3).to(torch.float16)
        gain = (torch.rand(k, generator=gen) + 0.5).to(torch.float16)
        xd, qd, sd, zd, bd, gd = to_dev(x, q, s, z, bias, gain)
        out = ops.weight_only_matmul(xd, qd, sd, zd, None, 4, 128, None, bd, None, gd, 1e-6)
        first = ops.weight_only_matmul(ops.rms_norm(xd, gd, 1e-6), qd, sd, zd, None, 4, 128, None, bd)
        words = m <= ops.path_limits(xd, qd, 4, None)["words"] if xd.is_cuda else False
        if words:
            check(out, _normed_ref(x, gain, 1e-6, w, bias), torch.float16, k)
        else:
            assert torch.equal(out, first)


def test_op_refuses_a_bad_norm_and_a_gradient():
    gen = make_gen("norm-bad")
    q, s, z, _, _ = random_storage(8, 64, 4, 64, False, gen)
    x = torch.randn(1, 64, generator=gen).to(torch.float16)
    for gain, eps in [(torch.ones(63, dtype=torch.float16), 1e-6), (torch.ones(64), 1e-6), (torch.ones(64, dtype=torch.float16), -1.0)]:
        with pytest.raises(ValueError, match="norm's"):
            ops.weight_only_matmul(x, q, s, z, None, 4, 64, None, None, None, gain, eps)
    gain = torch.ones(64, dtype=torch.float16, requires_grad=True)
    with pytest.raises(ValueError, match="no backward"):
        ops.weight_only_linear(x.requires_grad_(), q, s, z, 4, 64, norm=(gain, 1e-6))


def _llama(seed: int) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(num_hidden_layers=2, hidden_size=128, intermediate_size=256, num_attention_heads=4, num_key_value_heads=2,
                      vocab_size=256)
    return LlamaForCausalLM(cfg).eval()


@pytest.mark.parametrize("method", [lowbit.RTN(bits=4, granularity="group", group_size=64, symmetric=False), lowbit.RTN(bits=8), lowbit.NF4()],
                         ids=["int4-g64", "int8", "nf4"])
@pytest.mark.parametrize("fuse", [True, False], ids=["fused-projections", "parts"])
def test_fused_norms_keep_the_logits_and_the_state_dict(one_thread, method, fuse):
    """A tiny Llama quantized, then its norms fused: two a layer; the state dict unchanged (the same tensors under the
    same names, the same storage); logits as before, bit for bit through the reference path (CPU) and within the normed input's rounding
    through the word GEMV (GPU, one token); fusing again finds nothing."""
    seed = int(torch.randint(0, 2**31, (1,), generator=make_gen("fused-llama", fuse, repr(method))))
    model = _llama(seed).to(DEVICE, torch.float16)
    if fuse:
        fuse_projections(model)
    lowbit.quantize(model, method, "no-lm_head")
    before = dict(model.state_dict())
    ids = token_ids(("fused-llama", fuse), n=1, length=7).to(DEVICE)
    with torch.no_grad():
        ref = [model(ids).logits, model(ids[:, :1]).logits]
        assert fuse_norms(model) == 4 and fuse_norms(model) == 0
        out = [model(ids).logits, model(ids[:, :1]).logits]
    after = model.state_dict()
    assert list(after) == list(before) and all(after[k].data_ptr() == before[k].data_ptr() for k in before)
    layer = model.model.layers[0]
    x = torch.randn(1, 128, device=DEVICE, dtype=torch.float16)
    assert torch.equal(layer.input_layernorm(x), x)  # the linears compute it now
    if DEVICE == "cpu":
        assert all(torch.equal(a, b) for a, b in zip(out, ref))
    else:  # one token: the word GEMV; seven: the swapped kernel, the norm run first
        assert torch.equal(out[0], ref[0])
        assert (out[1] - ref[1]).abs().max() <= 2**-6 * ref[1].abs().max()


def test_fused_norms_backward_runs_the_norm_first(one_thread):
    """A gradient through a fused layer (adapters on a quantized base) is the unfused one: the norm runs first (once
    for each of q, k and v, whose gradients then meet in another order: fp32 summation, ~1e-6 relative)."""
    seed = int(torch.randint(0, 2**31, (1,), generator=make_gen("fused-grad")))
    model, fused = _llama(seed), _llama(seed)
    for m in (model, fused):
        lowbit.quantize(m, lowbit.RTN(bits=8), "no-lm_head")
    assert fuse_norms(fused) == 4
    ids = token_ids("fused-grad", n=2, length=5)
    grads = []
    for m in (model, fused):
        emb = m.model.embed_tokens(ids).detach().requires_grad_()
        m(inputs_embeds=emb).logits.square().sum().backward()
        grads.append(emb.grad)
    assert torch.allclose(grads[0], grads[1], rtol=1e-5, atol=1e-5 * grads[0].abs().max().item())


class _Twice(LlamaDecoderLayer):
    """A decoder layer that also adds the normed input to its output: the norm's output goes elsewhere too."""

    def forward(self, hidden_states, **kwargs):
        residual = hidden_states
        hidden_states = self.input_layernorm(hidden_states)
        extra = hidden_states
        hidden_states, _ = self.self_attn(hidden_states=hidden_states, **kwargs)
        return residual + hidden_states + extra


class _Rebound(LlamaDecoderLayer):
    """A decoder layer that may replace the normed input before the attention reads it."""

    def forward(self, hidden_states, **kwargs):
        residual = hidden_states
        hidden_states = self.input_layernorm(hidden_states)
        if kwargs.get("skip"):
            hidden_states = residual
        hidden_states, _ = self.self_attn(hidden_states=hidden_states, **kwargs)
        return residual + hidden_states


def test_fuse_norms_leaves_what_it_cannot_take(one_thread):
    """bf16 linears, GPT-2's LayerNorms, W8A8 (its activations are quantized from the normed input), and blocks whose
    norm output is read twice or may be replaced before the attention reads it are left as they are."""
    model = _llama(0)
    assert fuse_norms(model) == 0
    lowbit.quantize(model, lowbit.W8A8(), "no-lm_head")
    assert fuse_norms(model) == 0
    gpt2 = tiny_gpt2()
    lowbit.quantize(gpt2, lowbit.RTN(bits=8), "no-lm_head")
    assert fuse_norms(gpt2) == 0
    assert feeds_only(LlamaDecoderLayer, "input_layernorm", "self_attn") and feeds_only(LlamaDecoderLayer, "post_attention_layernorm", "mlp")
    assert not feeds_only(_Twice, "input_layernorm", "self_attn") and not feeds_only(LlamaDecoderLayer, "input_layernorm", "mlp")
    assert not feeds_only(_Rebound, "input_layernorm", "self_attn")


def test_a_fused_model_saves_and_loads_unfused(tmp_path, one_thread):
    """save writes each fused layer as its own class; load gives the unfused model, with the same logits."""
    model = _llama(5)
    lowbit.quantize(model, lowbit.NF4(), "no-lm_head")
    ids = token_ids("fused-save", n=1, length=6)
    with torch.no_grad():
        ref = model(ids).logits
        assert fuse_norms(model) == 4
        lowbit.save(model, tmp_path / "q")
        loaded = lowbit.load(tmp_path / "q")
        assert type(loaded.model.layers[0].mlp.up_proj).__name__ == "NF4Linear"
        assert torch.equal(loaded(ids).logits, ref)


@pytest.mark.parametrize("model_type,fused", [("mistral", 4), ("qwen2", 4), ("qwen3", 4), ("granite", 4), ("gemma", 0), ("olmo2", 0)])
def test_fuse_norms_on_other_architectures(one_thread, model_type, fused):
    """transformers' own classes: Mistral, Qwen2, Qwen3 (its q/k norms inside the attention stay) and Granite fuse both
    norms of each layer and keep their logits; Gemma's norm (x·(1 + gain)) and OLMo-2's (after the attention, not
    before) are left."""
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model(model_type, num_hidden_layers=2, hidden_size=128, intermediate_size=256, num_attention_heads=4,
                               num_key_value_heads=2, head_dim=32, vocab_size=256, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=make_gen("arch", model_type))))
    model = AutoModelForCausalLM.from_config(cfg).eval()
    fuse_projections(model)
    lowbit.quantize(model, lowbit.RTN(bits=8), "no-lm_head")
    ids = token_ids(("arch", model_type), n=1, length=6)
    with torch.no_grad():
        ref = model(ids).logits
        assert fuse_norms(model) == fused
        assert torch.equal(model(ids).logits, ref)
