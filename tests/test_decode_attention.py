"""lowbit's decode attention (`ops.decode_attention`, `models.attention`): the split-KV kernel (the interpreter on CPU,
the GPU where there is one) against softmax attention written out in float64, on fresh random inputs with grouped
queries, static-cache masks and every split; and as a transformers attention implementation, the tokens of SDPA."""

import math

import pytest
import torch

from lowbit.ops import decode_attention as da
from lowbit.ops import tiles

pytestmark = pytest.mark.skipif(da.triton is None, reason="needs triton")

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def float64_attention(q, k, v, mask, scale):
    """out[b, h] = Σ_l w_l v[b, h // G, l], w = exp(s_l − max s) / Σ exp(s − max s) over attended slots,
    s_l = scale · q[b, h] · k[b, h // G, l]."""
    b, h, _, d = q.shape
    group = h // k.shape[1]
    out = torch.empty(b, h, 1, d, dtype=torch.float64)
    for i in range(b):
        for j in range(h):
            s = (k[i, j // group].double() @ q[i, j, 0].double()) * scale
            keep = torch.ones_like(s, dtype=torch.bool) if mask is None else mask[min(i, mask.shape[0] - 1), 0, 0].cpu()
            e = torch.exp(s[keep] - s[keep].max()) if keep.any() else s[keep]
            out[i, j, 0] = (e[:, None] * v[i, j // group][keep].double()).sum(0) / e.sum()
    return out


def operands(b, h, hkv, length, d, dtype, seed, valid=None):
    """q (strided, as transformers passes it), k, v and the mask of a static cache whose first valid[i] slots of
    sequence i are written (None: no mask); the other slots hold NaN, which must not reach the output."""
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(b, 1, h, d, generator=gen).to(dtype).transpose(1, 2)
    k = torch.randn(b, hkv, length, d, generator=gen).to(dtype)
    v = torch.randn(b, hkv, length, d, generator=gen).to(dtype)
    mask = None if valid is None else (torch.arange(length)[None, :] < torch.tensor(valid)[:, None])[:, None, None, :]
    if mask is not None:
        k[~mask[:, 0, 0][:, None].expand_as(k[..., 0])] = float("nan")
        v[~mask[:, 0, 0][:, None].expand_as(v[..., 0])] = float("nan")
    return q, k, v, mask


TOL = {torch.float32: 1e-5, torch.float16: 2**-10}  # fp32 sums; one rounding of the output to fp16 (2^-11) and the inputs'


@pytest.mark.parametrize("b,h,hkv,length,d,valid", [(1, 4, 4, 37, 32, [30]), (2, 8, 2, 100, 64, [100, 7]),
                                                   (1, 2, 1, 5, 16, None), (3, 4, 1, 64, 16, [1, 64, 33]),
                                                   (1, 2, 1, 200, 16, [20])])  # a long cache, a short context
@pytest.mark.parametrize("splits", [1, 2, 8, None])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_kernel_matches_float64_attention(b, h, hkv, length, d, valid, splits, dtype):
    """Grouped queries, masks with one to every slot, slices of the cache that are empty or entirely masked."""
    q, k, v, mask = operands(b, h, hkv, length, d, dtype, seed=b * h * length + d, valid=valid)
    want = float64_attention(q, k, v, mask, 1 / math.sqrt(d))
    dev = [t.to(DEVICE) if t is not None else None for t in (q, k, v, mask)]
    out = da.decode_attention_triton(*dev, 1 / math.sqrt(d), splits=splits).cpu()
    assert out.dtype == dtype and out.shape == (b, h, 1, d)
    assert ((out.double() - want).norm() / want.norm()).item() <= TOL[dtype]
    assert all(int(c.abs().sum()) == 0 for c in tiles._COUNTERS.values())  # the last programs reset their counters


@pytest.mark.filterwarnings("ignore:invalid value encountered in divide")  # the interpreter's 0 / 0
def test_a_fully_masked_query_is_nan_as_in_sdpa_and_only_there():
    q, k, v, _ = operands(2, 2, 2, 20, 16, torch.float32, seed=4)
    mask = torch.zeros(2, 1, 1, 20, dtype=torch.bool)
    mask[1, ..., :5] = True
    out = da.decode_attention_triton(q.to(DEVICE), k.to(DEVICE), v.to(DEVICE), mask.to(DEVICE), 0.25, splits=4).cpu()
    assert out[0].isnan().all() and not out[1].isnan().any()
    assert da.decode_attention_reference(q, k, v, mask, 0.25)[0].isnan().all()


def test_the_op_takes_the_reference_off_cuda_and_passes_opcheck():
    q, k, v, mask = operands(2, 4, 2, 24, 16, torch.float32, seed=5, valid=[24, 9])
    want = float64_attention(q, k, v, mask, 0.3)
    out = da.decode_attention(q, k, v, mask, 0.3)
    assert ((out.double() - want).norm() / want.norm()).item() <= 1e-5
    k, v = k.nan_to_num(), v.nan_to_num()  # opcheck compares outputs without equal_nan (no mask below: NaN out)
    torch.library.opcheck(da._decode_attention, (q, k, v, mask, 0.3))
    torch.library.opcheck(da._decode_attention, (q, k, v, None, 0.3))


def test_bad_shapes_are_named():
    q, k, v, mask = operands(1, 4, 2, 8, 16, torch.float32, seed=6, valid=[8])
    with pytest.raises(ValueError, match="one query token"):
        da.decode_attention(torch.cat([q, q], 2), k, v)
    with pytest.raises(ValueError, match="kv_heads dividing the 4 query heads"):
        da.decode_attention(q, k[:, :1].expand(1, 3, 8, 16), v[:, :1].expand(1, 3, 8, 16))
    with pytest.raises(ValueError, match="mask must be bool"):
        da.decode_attention(q, k, v, mask.float())
    with pytest.raises(ValueError, match="power-of-two head_dim"):
        da.decode_attention_triton(q[..., :12], k[..., :12], v[..., :12], None, 1.0)
    with pytest.raises(ValueError, match="splits must be a power of two"):
        da.decode_attention_triton(q, k, v, None, 1.0, splits=3)
    with pytest.raises(ValueError, match="block must be a power of two of at least 16"):
        da.decode_attention_triton(q, k, v, None, 1.0, block=24)


@pytest.mark.parametrize("kernel", [False, True])
def test_as_a_transformers_attention_it_decodes_sdpa_tokens(monkeypatch, one_thread, kernel):
    """A tiny Llama (grouped queries) switched to it: every decode step goes through it (the kernel on CPU tensors in
    the interpreter when `kernel`), prefill does not, and greedy decoding gives SDPA's tokens."""
    from lowbit.bench import generate
    from lowbit.models import attention

    if kernel and DEVICE == "cpu":
        monkeypatch.setattr(da, "_kernel_takes", lambda q, k, v: True)
    calls = []
    real = attention.decode_attention
    monkeypatch.setattr(attention, "decode_attention", lambda *a: calls.append(a[0].shape) or real(*a))
    device = torch.device(DEVICE)
    sdpa = generate.build_model("tiny", device, torch.float32, seed=0)
    ours = attention.use_decode_attention(generate.build_model("tiny", device, torch.float32, seed=0))
    assert ours.config._attn_implementation == attention.NAME
    prompt = torch.randint(3, 256, (2, 8), generator=torch.Generator().manual_seed(2))
    want = generate.greedy_generate(sdpa, prompt, 6, graph=False)
    assert not calls
    got = generate.greedy_generate(ours, prompt, 6, graph=False)
    assert torch.equal(got, want)
    layers = ours.config.num_hidden_layers
    # the warm-up's step and the generate's 5, never a prefill
    assert len(calls) == 6 * layers and all(s == (2, 4, 1, 16) for s in calls)


@pytest.mark.parametrize("case", ["prefill", "softcap", "float mask", "decode"])
def test_only_plain_one_token_steps_take_the_kernel(monkeypatch, case):
    from transformers.integrations import sdpa_attention

    from lowbit.models import attention

    took = []
    monkeypatch.setattr(attention, "decode_attention", lambda *a: took.append("kernel") or torch.zeros(1, 4, 1, 16))
    monkeypatch.setattr(sdpa_attention, "sdpa_attention_forward", lambda *a, **kw: took.append("sdpa") or (None, None))
    q, k, v, mask = operands(1, 4, 2, 8, 16, torch.float32, seed=7, valid=[5])
    kwargs = {"position_ids": torch.zeros(1, 1), "use_cache": True}
    if case == "prefill":
        q = torch.cat([q, q], 2)
    if case == "softcap":
        kwargs["softcap"] = 30.0
    if case == "float mask":
        mask = torch.zeros(mask.shape).masked_fill(~mask, float("-inf"))
    attention.decode_attention_forward(torch.nn.Module(), q, k, v, mask, scaling=0.25, **kwargs)
    assert took == (["kernel"] if case == "decode" else ["sdpa"])


def test_use_decode_attention_names_a_wrong_model():
    from lowbit.models import attention

    with pytest.raises(ValueError, match="takes a transformers model"):
        attention.use_decode_attention(torch.nn.Linear(2, 2))


@pytest.mark.skipif(DEVICE != "cuda", reason="CUDA graphs")
def test_the_compiled_decode_step_with_it_is_a_cuda_graph_of_sdpa_tokens():
    from transformers import AutoModelForCausalLM, LlamaConfig

    from lowbit.bench import generate
    from lowbit.models import attention

    def model():
        cfg = LlamaConfig(**{**generate.LLAMA2, **generate.MODELS["tiny"], "hidden_size": 256, "num_attention_heads": 4,
                             "num_key_value_heads": 2, "intermediate_size": 256})
        torch.manual_seed(0)
        with torch.device("cuda"):
            return AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, attn_implementation="sdpa").eval()

    prompt = torch.randint(3, 256, (1, 16), generator=torch.Generator().manual_seed(3))
    want = generate.greedy_generate(model(), prompt, 12, graph=False)
    gen = generate.StaticGenerator(attention.use_decode_attention(model()), 1, 16, 12, graph=True, compile=True)
    gen.warmup(prompt)
    assert gen.mode == "graph (layers compiled)"
    tokens, _ = gen.generate(prompt)
    assert torch.equal(tokens.cpu()[:, :4], want[:, :4]) and int(gen.nonfinite) == 0
