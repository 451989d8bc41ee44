"""Quantized linear layers (lowbit.layers), built through their method configs."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import math
import zlib

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from transformers.pytorch_utils import Conv1D

import lowbit
from lowbit.formats import codebook, fp, nf4
from lowbit.formats import int as fi
from lowbit.formats.error import sqnr
from lowbit.layers import (
    LAYER_CLASSES,
    FP8Linear,
    IntWeightLinear,
    KMeansLinear,
    NF4Linear,
    QuantLinear,
    float_weight,
)

EPS32 = torch.finfo(torch.float32).eps
IN, OUT = 128, 96

# (id, config, output-SQNR floor in dB on Gaussian weights and inputs). Output SQNR ≈ weight SQNR
# for x independent of W (E‖X Eᵀ‖² / E‖X Wᵀ‖² = ‖E‖²/‖W‖²). Weight SQNR under the uniform-noise
# model: 10·log10(12) + 20·log10(qmax) − 20·log10(max/σ) for absmax grids.
METHODS = [
    # 8-bit, rows of 128: max/σ ≈ 2.9 -> ≈ 43 dB predicted; floor 30
    ("rtn8", lowbit.RTN(8), 30.0),
    # 4-bit zero-point, groups of 32: step = range/15, E[range²] ≈ 17.5σ² -> ≈ 22 dB; floor 15
    ("rtn4-g32-asym", lowbit.RTN(4, "group", 32, False), 15.0),
    # 3-bit absmax, groups of 32: qmax 3, E[max²] ≈ 5.5σ² -> ≈ 13 dB; floor 9
    ("rtn3-g32", lowbit.RTN(3, "group", 32), 9.0),
    # 2-bit absmax {-s, 0, s}, s = row max ≈ 2.6-3.3σ: Gaussian integrals give 1.4-2.3 dB; floor 0.5
    ("rtn2-ch", lowbit.RTN(2, "channel"), 0.5),
    # NF4 on Gaussian weights, block 64: ≈ 20 dB (QLoRA's table is near-optimal); floor 15
    ("nf4", lowbit.NF4(64), 15.0),
    ("nf4-dq", lowbit.NF4(64, True), 15.0),
    # minifloats: relative rounding error ≤ 2^-(M+1) -> ≥ 10·log10(12·4^M): 28.9 dB (M=3), 22.8 dB (M=2)
    ("fp8-e4m3", lowbit.FP8("e4m3"), 25.0),
    ("fp8-e5m2-tensor", lowbit.FP8("e5m2", "tensor"), 18.0),
    # int8 weights and int8 activations, each ≈ 43 dB -> ≈ 40 dB combined; floor 30
    ("w8a8", lowbit.W8A8(), 30.0),
    ("w8a8-tensor", lowbit.W8A8("tensor"), 30.0),
    ("llm-int8", lowbit.LLMInt8(), 30.0),
    # 16 Lloyd centroids on a Gaussian: Lloyd-Max 4-bit is 20.2 dB; floor 15
    ("kmeans4", lowbit.KMeans(4), 15.0),
]
IDS = [m[0] for m in METHODS]
CONFIGS = [m[1] for m in METHODS]
WEIGHT_ONLY = (IntWeightLinear, NF4Linear, FP8Linear, KMeansLinear)
WO_METHODS = [(i, m) for i, m, _ in METHODS if not isinstance(m, (lowbit.W8A8, lowbit.LLMInt8))]


def make_gen(*key) -> torch.Generator:
    return torch.Generator().manual_seed(zlib.crc32(repr(key).encode()))


def float_pair(gen, in_features=IN, out_features=OUT):
    """An nn.Linear and a GPT-2 Conv1D carrying the same weight (Conv1D stores it transposed)."""
    lin = nn.Linear(in_features, out_features)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(out_features, in_features, generator=gen) / math.sqrt(in_features))
        lin.bias.copy_(torch.randn(out_features, generator=gen) * 0.1)
    conv = Conv1D(out_features, in_features)
    with torch.no_grad():
        conv.weight.copy_(lin.weight.t())
        conv.bias.copy_(lin.bias)
    return lin, conv


def build(method, module, name="layer"):
    return method.layer(*float_weight(module, name))


def buffer_bytes(layer) -> int:
    return sum(b.numel() * b.element_size() for b in layer.buffers())


@pytest.mark.parametrize("method", CONFIGS, ids=IDS)
def test_linear_and_conv1d_give_identical_layers(method):
    gen = make_gen("pair", repr(method))
    lin, conv = float_pair(gen)
    a, b = build(method, lin), build(method, conv)
    assert type(a) is type(b) and isinstance(a, QuantLinear)
    assert a.in_features == IN and a.out_features == OUT
    assert list(a.parameters()) == []  # quantized storage lives in buffers
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
        # row-major as the kernels read it: Conv1D's weight arrives transposed, and its 8-bit codes once stayed so
        assert sb[k].is_contiguous(), (k, sb[k].stride())
    x = torch.randn(2, 17, IN, generator=gen)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))


@pytest.mark.parametrize("method", [m for _, m in WO_METHODS], ids=[i for i, _ in WO_METHODS])
def test_weight_only_forward_is_linear_of_dequantized_weight(method):
    gen = make_gen("wo", repr(method))
    lin, _ = float_pair(gen)
    layer = build(method, lin)
    assert isinstance(layer, WEIGHT_ONLY)
    x = torch.randn(3, 11, IN, generator=gen)
    with torch.no_grad():
        out = layer(x)
    w_hat = layer.dequantize_weight()
    assert w_hat.shape == (OUT, IN) and w_hat.dtype == torch.float32
    torch.testing.assert_close(out, F.linear(x, w_hat, lin.bias.detach()), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method", [m for _, m in WO_METHODS], ids=[i for i, _ in WO_METHODS])
def test_dequantized_weight_equals_format_level_quantization(method):
    """The layer's packed storage decodes to exactly what the format module produces."""
    gen = make_gen("fmt", repr(method))
    lin, _ = float_pair(gen)
    w = lin.weight.detach()
    layer = build(method, lin)
    if isinstance(method, lowbit.RTN):
        q = fi.quantize(w, method.bits, symmetric=method.symmetric, granularity=method.granularity, group_size=method.group_size)
        expected = q.dequantize()
        # and the format's guarantee |w − ŵ| ≤ s/2 holds through packing
        s = fi.expand_to(q.scale, method.granularity, method.group_size)
        assert ((layer.dequantize_weight() - w).abs() <= s * (0.5 + 1e-4)).all()
        assert torch.equal(layer.codes().to(torch.int64), q.codes.to(torch.int64))
    elif isinstance(method, lowbit.NF4):
        expected = nf4.quantize(w, method.block_size, method.double_quant).dequantize()
    elif isinstance(method, lowbit.FP8):
        expected = fp.dequantize_fp8(*fp.quantize_fp8(w, method.fmt, method.granularity))
    else:
        codes, centroids = codebook.kmeans(w, method.bits, method.iters)
        expected = codebook.lookup(codes, centroids)
    assert torch.equal(layer.dequantize_weight(), expected)


@pytest.mark.parametrize("act_granularity", ["token", "tensor"])
def test_w8a8_equals_float64_reference_from_codes(act_granularity):
    gen = make_gen("w8a8", act_granularity)
    lin, _ = float_pair(gen)
    layer = build(lowbit.W8A8(act_granularity), lin)
    w = lin.weight.detach()
    wq = fi.quantize(w, 8, granularity="channel")
    assert layer.qweight.dtype == torch.int8
    assert torch.equal(layer.qweight, wq.codes) and torch.equal(layer.scale, wq.scale)
    x = torch.randn(2, 19, IN, generator=gen) * 2
    with torch.no_grad():
        out = layer(x)
    x2 = x.reshape(-1, IN)
    xq = fi.quantize(x2, 8, granularity=act_granularity)
    prod = (xq.codes.double() @ wq.codes.double().t()) * xq.scale.double().reshape(-1, 1) * wq.scale.double().reshape(1, -1)
    ref = prod + lin.bias.double()
    # float32 epilogue: exact int32 accumulation, then two scale products and a bias add
    tol = 4 * EPS32 * (prod.abs() + lin.bias.double().abs())
    assert ((out.reshape(-1, OUT).double() - ref).abs() <= tol).all()


def test_llm_int8_without_outliers_equals_w8a8_per_token():
    gen = make_gen("llm-no-outlier")
    lin, _ = float_pair(gen)
    llm, w8 = build(lowbit.LLMInt8(), lin), build(lowbit.W8A8(), lin)
    x = torch.randn(3, 21, IN, generator=gen).clamp(-5.0, 5.0)  # below the 6.0 threshold
    with torch.no_grad():
        assert llm.outlier_columns(x.reshape(-1, IN)).numel() == 0
        assert torch.equal(llm(x), w8(x))


def test_llm_int8_outlier_columns_take_the_float_path():
    """Planted outliers (|x| in 20..60) in 3 of 512 input columns, in half of the tokens.

    Expected output by construction (float64): the regular columns (outlier columns zeroed) go
    through per-token int8 × per-channel int8; the outlier columns — every token of them — are
    multiplied in float by the int8 weights dequantized.

    Error vs the float layer (σ_w² units per output, K = 512, uniform-noise model):
      W8A8 quantizes each outlier token with step ≈ 50/127 ≈ 0.39: K·0.39²/12 ≈ 6.5 on half the
      tokens -> ≈ 3.3 on average; LLM.int8() keeps regular steps ≈ 3.3/127: K·(3.3/127)²/12 ≈ 0.03
      for activations, 0.03 for weights, plus the outlier columns × int8 weight error
      (3 · E[U(20,60)²] · (3.3/127)²/12 / 2 ≈ 0.15). So ≈ 0.21 vs ≈ 3.5: ratio ≈ 17; require 5.
      Against the dequantized-weight product (activation error only): ≈ 0.03 vs ≈ 3.3, ratio
      ≈ 100; require 30."""
    k, out_f, tokens = 512, 64, 48
    gen = make_gen("llm-outliers")
    lin, _ = float_pair(gen, k, out_f)
    layer = build(lowbit.LLMInt8(), lin)
    w8 = build(lowbit.W8A8(), lin)
    x = torch.randn(tokens, k, generator=gen).clamp(-5.0, 5.0)
    cols = torch.tensor([3, 100, 400])
    rows = torch.randperm(tokens, generator=gen)[: tokens // 2]
    mag = 20 + 40 * torch.rand(len(rows), len(cols), generator=gen)
    sign = torch.where(torch.rand(len(rows), len(cols), generator=gen) < 0.5, -1.0, 1.0)
    x[rows[:, None], cols[None, :]] = mag * sign
    x3 = x.reshape(2, tokens // 2, k)

    assert torch.equal(layer.outlier_columns(x), cols)
    with torch.no_grad():
        out = layer(x3).reshape(tokens, out_f).double()
        out_w8 = w8(x3).reshape(tokens, out_f).double()

    # expected by construction
    regular = x.clone()
    regular[:, cols] = 0
    xq = fi.quantize(regular, 8, granularity="token")
    wc, ws = layer.qweight.double(), layer.scale.double().reshape(1, -1)
    part_int = (xq.codes.double() @ wc.t()) * xq.scale.double().reshape(-1, 1) * ws
    w_hat = wc * ws.t()
    part_float = x[:, cols].double() @ w_hat[:, cols].t()
    expected = part_int + part_float + lin.bias.double()
    scale_of_terms = part_int.abs() + x[:, cols].double().abs() @ w_hat[:, cols].abs().t() + lin.bias.double().abs()
    assert ((out - expected).abs() <= 1e-5 * scale_of_terms).all()

    # error vs the float layer
    ref = x.double() @ lin.weight.double().t() + lin.bias.double()
    err_llm = (out - ref).pow(2).mean().item()
    err_w8 = (out_w8 - ref).pow(2).mean().item()
    assert err_w8 >= 5 * err_llm, (err_w8, err_llm)
    # activation-quantization error alone (against the int8 weights in float)
    ref_q = x.double() @ w_hat.t() + lin.bias.double()
    assert (out_w8 - ref_q).pow(2).mean().item() >= 30 * (out - ref_q).pow(2).mean().item()


def test_llm_int8_calibrated_columns_take_their_16_bit_weights_once():
    """A calibrated outlier column (its weight kept in fp16) that also exceeds the threshold in this batch, beside a column
    found at run time: the calibrated one is multiplied once, by its fp16 weight (not also by its int8 one), the run-time
    one by the int8 weight in float, the rest through int8. Expected by construction in float64."""
    from lowbit.layers.llm_int8 import LLMInt8Linear

    k, out_f, tokens = 256, 32, 40
    gen = make_gen("llm-calibrated")
    lin, _ = float_pair(gen, k, out_f)
    known, found = torch.tensor([5, 77]), 130
    layer = LLMInt8Linear.from_float(lin.weight.detach(), lin.bias.detach(), outlier_cols=known)
    x = torch.randn(tokens, k, generator=gen).clamp(-5.0, 5.0)
    x[:, [5, found]] *= 10  # column 77 stays below the threshold: calibrated, but not an outlier in this batch
    x[0, [5, found]] = 40.0
    with torch.no_grad():
        out = layer(x).double()
    regular = x.clone()
    regular[:, [5, 77, found]] = 0
    xq = fi.quantize(regular, 8, granularity="token")
    wc, ws = layer.qweight.double(), layer.scale.double().reshape(1, -1)
    part_int = (xq.codes.double() @ wc.t()) * xq.scale.double().reshape(-1, 1) * ws
    part_found = x[:, [found]].double() @ (wc[:, [found]] * ws.t()).t()
    part_known = x[:, known].double() @ layer.outlier_weight.double().t()
    expected = part_int + part_found + part_known + lin.bias.double()
    # the calibrated columns' product runs in fp16, the weights' dtype (x, the products and the sum rounded: 3 · 2^-11)
    known_terms = x[:, known].double().abs() @ layer.outlier_weight.double().abs().t()
    tol = 1e-5 * (part_int.abs() + part_found.abs() + lin.bias.double().abs()) + 1.5e-3 * known_terms
    assert ((out - expected).abs() <= tol).all()


@pytest.mark.parametrize("method,floor", [(m[1], m[2]) for m in METHODS], ids=IDS)
def test_output_sqnr_floor(method, floor):
    gen = make_gen("sqnr", repr(method))
    lin, _ = float_pair(gen)
    layer = build(method, lin)
    x = torch.randn(4, 32, IN, generator=gen)
    with torch.no_grad():
        ref = F.linear(x.double(), lin.weight.double(), lin.bias.double())
        out = layer(x)
    assert sqnr(ref, out) >= floor


def test_bytes_ordered_by_bits_and_exact():
    gen = make_gen("bytes")
    lin, _ = float_pair(gen)
    fp32 = lin.weight.numel() * 4 + OUT * 4
    layers = {
        2: build(lowbit.RTN(2, "channel"), lin),
        3: build(lowbit.RTN(3, "group", 32), lin),
        4: build(lowbit.RTN(4, "group", 32, False), lin),
        8: build(lowbit.RTN(8), lin),
    }
    groups = IN // 32
    expected = {
        2: OUT * (IN // 8) * 2 + OUT * 4 + OUT * 4,  # packed codes, per-row scale, bias
        3: OUT * (IN // 8) * 3 + OUT * groups * 4 + OUT * 4,
        4: OUT * (IN // 8) * 4 + OUT * groups * (4 + 1) + OUT * 4,  # + uint8 zero points
        8: OUT * IN + OUT * 4 + OUT * 4,
    }
    got = {b: buffer_bytes(layer) for b, layer in layers.items()}
    assert got == expected
    assert got[2] < got[3] < got[4] < got[8] < fp32

    blocks = IN * OUT // 64
    assert buffer_bytes(build(lowbit.NF4(64), lin)) == IN * OUT // 2 + blocks * 4 + OUT * 4
    assert buffer_bytes(build(lowbit.NF4(64, True), lin)) == IN * OUT // 2 + blocks + 4 * -(-blocks // 256) + 4 + OUT * 4
    assert buffer_bytes(build(lowbit.FP8("e4m3"), lin)) == IN * OUT + OUT * 4 + OUT * 4
    assert buffer_bytes(build(lowbit.FP8("e5m2", "tensor"), lin)) == IN * OUT + 4 + OUT * 4
    assert buffer_bytes(build(lowbit.W8A8(), lin)) == IN * OUT + OUT * 4 + OUT * 4
    assert buffer_bytes(build(lowbit.LLMInt8(), lin)) == IN * OUT + OUT * 4 + OUT * 4
    assert buffer_bytes(build(lowbit.KMeans(4), lin)) == IN * OUT // 2 + 16 * 4 + OUT * 4


@pytest.mark.parametrize("method", CONFIGS, ids=IDS)
def test_input_shapes(method):
    gen = make_gen("shapes", repr(method))
    lin, _ = float_pair(gen)
    layer = build(method, lin)
    x3 = torch.randn(3, 13, IN, generator=gen)
    with torch.no_grad():
        y3 = layer(x3)
        y2 = layer(x3[1])
    assert y3.shape == (3, 13, OUT) and y2.shape == (13, OUT)
    if isinstance(method, lowbit.W8A8) and method.act_granularity == "tensor":
        # one activation scale over all tokens: batching changes the scale, not the result's size
        assert sqnr(y3[1], y2) > 35
    else:
        torch.testing.assert_close(y3[1], y2, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method", CONFIGS, ids=IDS)
def test_bf16_input_gives_bf16_output(method):
    """bf16 keeps 8 significant bits: each rounding of x, ŵ or the output has relative error
    ≤ 2^-9 (≈ 53 dB for uniform errors); a few of them and a bf16 matmul stay above 35 dB."""
    gen = make_gen("bf16", repr(method))
    lin, _ = float_pair(gen)
    layer = build(method, lin)
    x = torch.randn(2, 9, IN, generator=gen)
    with torch.no_grad():
        y = layer(x.bfloat16())
        y32 = layer(x)
    assert y.dtype == torch.bfloat16 and y.shape == (2, 9, OUT)
    assert torch.isfinite(y.float()).all()
    assert sqnr(y32, y.float()) > 35


# awkward in_features (not a multiple of 8) where the configuration allows it
AWKWARD = [
    ("rtn8", lowbit.RTN(8)),
    ("rtn2-ch", lowbit.RTN(2, "channel")),
    ("rtn5-asym-tensor", lowbit.RTN(5, "tensor", None, False)),
    ("nf4", lowbit.NF4(64)),
    ("fp8-e4m3", lowbit.FP8("e4m3")),
    ("w8a8", lowbit.W8A8()),
    ("llm-int8", lowbit.LLMInt8()),
    ("kmeans8", lowbit.KMeans(8)),
    ("kmeans3", lowbit.KMeans(3)),
]


@pytest.mark.parametrize("in_features", [IN, 12, 77])
@pytest.mark.parametrize("method", [m for _, m in AWKWARD], ids=[i for i, _ in AWKWARD])
def test_state_dict_loads_into_layer_rebuilt_from_config(method, in_features):
    """What lowbit.load does: build the class from (in, out, bias, config) and load the buffers.
    Buffer shapes of a fresh layer must match those of a quantized one for every in_features."""
    out_features = 64
    if isinstance(method, lowbit.NF4) and (in_features * out_features) % method.block_size:
        pytest.skip("block size does not divide the weight")
    gen = make_gen("sd", repr(method), in_features)
    lin, _ = float_pair(gen, in_features, out_features)
    layer = build(method, lin)
    cls = LAYER_CLASSES[type(layer).__name__]
    fresh = cls(in_features, out_features, True, bias_dtype=torch.float32, **layer.config())
    fresh_shapes = {k: tuple(v.shape) for k, v in fresh.state_dict().items()}
    layer_shapes = {k: tuple(v.shape) for k, v in layer.state_dict().items()}
    assert fresh_shapes == layer_shapes
    fresh.load_state_dict(layer.state_dict(), strict=True)
    x = torch.randn(5, in_features, generator=gen)
    with torch.no_grad():
        assert torch.equal(fresh(x), layer(x))


def test_layer_without_bias_and_bad_arguments():
    gen = make_gen("nobias")
    lin = nn.Linear(IN, OUT, bias=False)
    layer = build(lowbit.RTN(4, "group", 32), lin)
    assert layer.bias is None
    x = torch.randn(4, IN, generator=gen)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), F.linear(x, layer.dequantize_weight()), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="group_size"):
        build(lowbit.RTN(4, "group", 48), lin)  # 48 does not divide 128
    with pytest.raises(ValueError, match="block_size"):
        build(lowbit.NF4(7 * 64 * 1000), lin)
    with pytest.raises(ValueError):
        float_weight(nn.Conv2d(3, 3, 1), "conv")
    bad = nn.Linear(IN, OUT)
    with torch.no_grad():
        bad.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="blocks.0.fc"):
        build(lowbit.RTN(8), bad, "blocks.0.fc")
