"""CUDA checks at real shapes (GPT-2 small, Llama-2-7B linears). Skipped without a GPU."""

import copy

import pytest
import torch
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel

import lowbit
from lowbit.formats import sqnr
from lowbit.formats.int import int8_matmul

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

SHAPES = [(768, 2304), (3072, 768), (768, 50257), (4096, 11008)]  # (in, out): c_attn, mlp c_proj, lm_head, Llama up
METHODS = [
    lowbit.RTN(8),
    lowbit.RTN(4, "group", 128, False),
    lowbit.NF4(64, True),
    lowbit.FP8("e4m3"),
    lowbit.FP8("e4m3", activations="token"),
    lowbit.W8A8(),
    lowbit.LLMInt8(),
    lowbit.KMeans(4),
]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("method", METHODS, ids=lambda m: type(m).__name__)
def test_layer_on_cuda_matches_float64_reference(shape, method):
    k, n = shape
    torch.manual_seed(hash((k, n, repr(method))) % 2**31)
    lin = nn.Linear(k, n, device="cuda")
    layer = method.layer(lin.weight.detach(), lin.bias.detach())
    for m in (1, 5, 16, 17, 300):  # decode, a few tokens (W8A8 weight-only up to 16), above cuBLAS int8's M > 16 rule, prefill
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        out = layer(x)
        assert out.dtype == torch.bfloat16 and out.shape == (m, n) and torch.isfinite(out).all()
        ref = x.double() @ layer.dequantize_weight(torch.float64).t() + layer.bias.double()
        err = ((out.double() - ref).norm() / ref.norm()).item()
        # weight-only: bf16 rounding of dequantized weights and output (~2^-8); W8A8 adds int8 activations,
        # FP8 W8A8 E4M3 ones (3 mantissa bits: 2^-4 relative at worst, ~2^-5.6 in RMS over uniform mantissas)
        fp8_acts = isinstance(method, lowbit.FP8) and method.activations == "token"
        bound = 4e-2 if fp8_acts else 2e-2 if isinstance(method, (lowbit.W8A8, lowbit.LLMInt8)) else 1e-2
        assert err < bound, (m, err)


def test_int8_matmul_cuda_paths_are_exact():
    for m, k, n in [(1, 768, 2304), (17, 768, 64), (33, 77, 40), (300, 4096, 11008)]:
        a = torch.randint(-127, 128, (m, k), dtype=torch.int8, device="cuda")
        b = torch.randint(-127, 128, (n, k), dtype=torch.int8, device="cuda")
        assert torch.equal(int8_matmul(a, b).cpu(), a.cpu().long().matmul(b.cpu().long().t()).int())


def test_gpt2_small_shape_quantize_save_load_on_cuda(tmp_path):
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config()).to("cuda", torch.bfloat16).eval()  # 124M, real shapes, random weights
    ids = torch.randint(0, 50257, (2, 128), device="cuda")
    with torch.no_grad():
        ref = model(ids).logits.float()
    for method in (lowbit.RTN(8), lowbit.NF4(64, True), lowbit.W8A8()):
        q = lowbit.quantize(copy.deepcopy(model), method, "all")
        with torch.no_grad():
            out = q(ids).logits.float()
        assert sqnr(ref, out) > 10
        lowbit.save(q, tmp_path / type(method).__name__)
        back = lowbit.load(tmp_path / type(method).__name__, device="cuda")
        with torch.no_grad():
            assert torch.equal(back(ids).logits.float(), out)


def test_bench_timing_replays_a_graph_and_names_a_host_sync():
    """The benches' timing: a capturable matmul as a CUDA graph; one that reads a value on the host eagerly, saying so."""
    from lowbit.bench.timing import gpu_ms

    a = torch.randn(512, 512, device="cuda")
    ms, how = gpu_ms(lambda: a @ a, rep=20)
    assert how == "cuda graph" and ms > 0
    ms, how = gpu_ms(lambda: (a @ a).sum().item(), rep=20)
    assert how.startswith("eager (syncs with the host") and ms > 0


def test_llm_int8_decode_is_captured_in_a_cuda_graph():
    """LLM.int8() reads nothing on the host, so a CUDA graph captures it: up to VALUES_MAX_M["llm_int8"] tokens the weight-only
    kernels on its int8 weight (x exact, the calibrated outlier columns with their 16-bit weights), beyond that the
    int8 product with the batch's outlier columns masked out plus their product through the weight-only op. Each replay
    equals the eager call on fresh inputs with planted outliers (a calibrated column and one found at run time), and
    matches float64 of the layer's weight (beyond it, int8 activations: 2e-2)."""
    from lowbit.layers.llm_int8 import LLMInt8Linear
    from lowbit.ops.weight_only import VALUES_MAX_M

    limit = VALUES_MAX_M["llm_int8"]

    k, n = 4096, 4096
    gen = torch.Generator(device="cuda").manual_seed(5)
    w, b = torch.randn(n, k, device="cuda", generator=gen) * 0.02, torch.randn(n, device="cuda", generator=gen)
    plain = LLMInt8Linear.from_float(w, b)  # no calibrated outlier columns: the op's bias, x's dtype throughout
    calibrated = LLMInt8Linear.from_float(w, b, outlier_cols=torch.tensor([7, 900, 3000]))
    for m, layer in [(1, plain), (16, plain), (1, calibrated), (16, calibrated), (limit, calibrated),
                     (limit + 1, plain), (300, calibrated)]:
        w64 = layer.dequantize_weight(torch.float64)
        x = torch.randn(m, k, device="cuda", generator=gen, dtype=torch.bfloat16)
        layer(x)  # compiles the kernels outside the capture
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = layer(x)
        for trial in range(2):
            x.copy_(torch.randn(m, k, device="cuda", generator=gen))
            x[:, [7, 50, 3000]] *= 30  # a calibrated outlier column and one found at run time among them
            graph.replay()
            eager = layer(x)
            ref = x.double() @ w64.t() + layer.bias.double()
            err = ((out.double() - ref).norm() / ref.norm()).item()
            assert torch.equal(out, eager) and err < (1e-2 if m <= limit else 2e-2), (m, trial, err)
