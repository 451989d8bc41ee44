"""W4A16 group-wise int4 matmul: the Triton kernel (in the interpreter on CPU, on the GPU where
there is one) against float64 products with the layer's own dequantized weight, on fresh random
inputs; the custom op's reference path; the argument checks."""

import pytest
import torch

import lowbit
from lowbit.formats.packing import pack, packed_length
from lowbit.layers.int_weight import IntWeightLinear, _to_unsigned
from lowbit.ops import w4a16 as ops

pytestmark = pytest.mark.skipif(ops.triton is None, reason="needs triton")

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# bf16 tl.dot is wrong in the interpreter: fp16 there, both on a GPU
DTYPES = (torch.float16, torch.bfloat16) if torch.cuda.is_available() else (torch.float16,)


def rtn_layer(n, k, g, symmetric, gen, bias=True):
    w = torch.randn(n, k, generator=gen) * (1 + torch.rand(n, 1, generator=gen))
    b = torch.randn(n, generator=gen) if bias else None
    return lowbit.RTN(bits=4, granularity="group", group_size=g, symmetric=symmetric).layer(w, b)


def act_order_layer(n, k, g, symmetric, gen, bias=True):
    """GPTQ-like: codes chosen elsewhere, each input column's group given by a permuted g_idx."""
    groups = k // g
    if symmetric:
        codes, zero = torch.randint(-8, 8, (n, k), generator=gen, dtype=torch.int8), None
    else:
        codes = torch.randint(0, 16, (n, k), generator=gen, dtype=torch.uint8)
        zero = torch.randint(0, 16, (n, groups), generator=gen, dtype=torch.uint8)
    scale = torch.rand(n, groups, generator=gen) * 0.1 + 0.01
    g_idx = (torch.arange(k) // g)[torch.randperm(k, generator=gen)].to(torch.int32)
    b = torch.randn(n, generator=gen) if bias else None
    return IntWeightLinear.from_codes(codes, scale, zero, b, g_idx=g_idx, bits=4, granularity="group", group_size=g, symmetric=symmetric)


def storage(layer, device=DEVICE):
    """The op's operands: an act-order layer keeps its codes in group order (`perm`), the op takes them in input-column
    order with g_idx."""
    t = lambda v: None if v is None else v.to(device)  # noqa: E731
    qweight = layer.qweight if layer.perm is None else pack(_to_unsigned(layer.codes(), 4, layer.symmetric), 4)
    return t(qweight), t(layer.scale), t(layer.zero), t(layer.g_idx), layer.group_size, t(layer.bias)


def reference(x, layer):
    ref = x.cpu().double() @ layer.dequantize_weight(torch.float64).t()
    return ref if layer.bias is None else ref + layer.bias.double()


def run_kernel(x, layer, config=None):
    """The kernel into a NaN-poisoned output buffer: any element it fails to write stays NaN."""
    out = torch.full((x.shape[0], layer.out_features), float("nan"), dtype=x.dtype, device=x.device)
    res = ops.w4a16_matmul_triton(x, *storage(layer), config=config, out=out)
    assert res.data_ptr() == out.data_ptr() and res.shape == (x.shape[0], layer.out_features) and res.dtype == x.dtype
    return res


def assert_close(out, ref, tol=1e-2):
    out = out.cpu().double()
    assert torch.isfinite(out).all(), "non-finite (unwritten or garbage) elements in the output"
    err = ((out - ref).norm() / ref.norm()).item()
    assert err <= tol, err
    # element by element too: a few wrong elements would hide in the norm
    assert ((out - ref).abs() <= tol * ref.abs().max() + 1e-6).all(), (out - ref).abs().max().item()


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("g", [32, 64])
@pytest.mark.parametrize("m,k,n", [(1, 64, 24), (5, 192, 80), (33, 192, 24), (33, 64, 80)])
def test_kernel_matches_float64_rtn(m, k, n, g, symmetric):
    gen = torch.Generator().manual_seed(hash((m, k, n, g, symmetric)) % 2**31)
    layer = rtn_layer(n, k, g, symmetric, gen)
    for dtype in DTYPES:
        x = torch.randn(m, k, generator=gen).to(DEVICE, dtype)
        assert_close(run_kernel(x, layer), reference(x, layer))


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("m,k,n,g", [(1, 64, 24, 32), (5, 192, 80, 64), (33, 192, 24, 32)])
def test_kernel_matches_float64_act_order(m, k, n, g, symmetric):
    gen = torch.Generator().manual_seed(hash((m, k, n, g, symmetric, "act")) % 2**31)
    layer = act_order_layer(n, k, g, symmetric, gen)
    assert layer.g_idx is not None and not torch.equal(layer.g_idx, torch.arange(k, dtype=torch.int32) // g)
    for dtype in DTYPES:
        x = torch.randn(m, k, generator=gen).to(DEVICE, dtype)
        assert_close(run_kernel(x, layer), reference(x, layer))


# tile shapes the GPU heuristic picks and the two scale paths (one vector per tile / gathered
# per column), split-K included, all run in the interpreter on shapes that leave ragged edges
CONFIGS = [
    dict(BLOCK_M=16, BLOCK_N=64, BLOCK_K=128, SPLIT_K=1),  # decode, K-tile spans several groups
    dict(BLOCK_M=16, BLOCK_N=16, BLOCK_K=32, SPLIT_K=4),  # decode, split-K
    dict(BLOCK_M=16, BLOCK_N=32, BLOCK_K=64, SPLIT_K=2),  # split-K with a ragged last K-tile
    dict(BLOCK_M=64, BLOCK_N=128, BLOCK_K=64, SPLIT_K=1),  # prefill tiles larger than the problem
    dict(BLOCK_M=32, BLOCK_N=16, BLOCK_K=32, SPLIT_K=1, GROUP_M=2),  # several M-tiles, grouped order
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: "-".join(f"{v}" for v in c.values()))
@pytest.mark.parametrize("kind", ["rtn-sym", "rtn-asym", "act-asym"])
def test_kernel_tile_configs_and_ragged_edges(cfg, kind):
    gen = torch.Generator().manual_seed(hash((tuple(cfg.items()), kind)) % 2**31)
    m, k, n, g = 37, 160, 40, 32  # no dim a multiple of any block; K = 2.5 tiles of 64
    layer = act_order_layer(n, k, g, False, gen) if kind == "act-asym" else rtn_layer(n, k, g, kind == "rtn-sym", gen)
    x = torch.randn(m, k, generator=gen).to(DEVICE, torch.float16)
    assert_close(run_kernel(x, layer, config=cfg), reference(x, layer))


@pytest.mark.parametrize("m,n,k,g", [(1, 80, 192, 64), (1, 24, 64, 32), (12, 80, 192, 32), (33, 24, 192, 64), (100, 40, 64, 64)])
def test_gpu_heuristic_configs_are_correct(monkeypatch, m, n, k, g):
    # the configs a GPU would get (big tiles, split-K for decode), clipped to the problem
    monkeypatch.setattr(ops, "interpreting", lambda: False)
    cfg = ops._config(m, n, k, g, False, sm_count=132)
    monkeypatch.undo()
    assert cfg["BLOCK_K"] >= 32 and cfg["BLOCK_K"] <= max(32, k)
    if m <= 16:
        assert cfg["BLOCK_M"] == 16 and cfg["SPLIT_K"] >= 1
    gen = torch.Generator().manual_seed(m * n + k + g)
    layer = rtn_layer(n, k, g, False, gen)
    x = torch.randn(m, k, generator=gen).to(DEVICE, torch.float16)
    run_cfg = {key: cfg[key] for key in ("BLOCK_M", "BLOCK_N", "BLOCK_K", "GROUP_M", "SPLIT_K")}
    assert_close(run_kernel(x, layer, config=run_cfg), reference(x, layer))


def test_kernel_group_not_a_power_of_two_and_k_not_a_multiple_of_8():
    gen = torch.Generator().manual_seed(5)
    # g = 48: groups straddle K-tiles (per-column scale gather without g_idx)
    layer = rtn_layer(24, 192, 48, False, gen)
    x = torch.randn(9, 192, generator=gen).to(DEVICE, torch.float16)
    assert_close(run_kernel(x, layer), reference(x, layer))
    # K = 20: lowbit pads the packed row to 12 bytes; a plain K/2 = 10-byte row is accepted too
    layer = rtn_layer(24, 20, 10, True, gen)
    assert layer.qweight.shape == (24, packed_length(20, 4)) == (24, 12)
    x = torch.randn(3, 20, generator=gen).to(DEVICE, torch.float16)
    assert_close(run_kernel(x, layer), reference(x, layer))
    qw, s, z, gi, gs, b = storage(layer)
    out = ops.w4a16_matmul_triton(x, qw[:, :10].contiguous(), s, z, gi, gs, b)
    assert_close(out, reference(x, layer))
    # odd g = 5: columns 2j and 2j+1 (one byte) can sit in different groups
    for symmetric in (True, False):
        layer = rtn_layer(24, 20, 5, symmetric, gen)
        assert_close(run_kernel(x, layer), reference(x, layer))


def test_kernel_strided_input_no_bias_and_float32():
    gen = torch.Generator().manual_seed(6)
    layer = rtn_layer(40, 128, 64, False, gen, bias=False)
    big = torch.randn(128, 14, generator=gen).to(DEVICE, torch.float16)
    x = big.t()[::2]  # [7, 128], stride (2, 14): neither row- nor column-contiguous
    assert not x.is_contiguous()
    assert_close(run_kernel(x, layer), reference(x, layer))
    # float32 activations: full-precision dot, the only error is the final float32 rounding
    x32 = torch.randn(5, 128, generator=gen).to(DEVICE)
    assert_close(run_kernel(x32, layer), reference(x32, layer), tol=1e-5)


def test_kernel_bias_dtype_and_empty_batch():
    gen = torch.Generator().manual_seed(7)
    layer = rtn_layer(24, 64, 32, True, gen)
    layer.bias = layer.bias.half()  # a float16 bias (bias_dtype follows the float layer's)
    x = torch.randn(4, 64, generator=gen).to(DEVICE, torch.float16)
    assert_close(run_kernel(x, layer), reference(x, layer))
    out = ops.w4a16_matmul_triton(x[:0], *storage(layer))
    assert out.shape == (0, 24)


def test_nibble_order_matches_packing():
    codes = torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0]], dtype=torch.uint8)
    packed = pack(codes, 4)
    assert packed[0, :3].tolist() == [1 | 2 << 4, 3 | 4 << 4, 5 | 6 << 4]
    gen = torch.Generator().manual_seed(8)
    for layer in (rtn_layer(8, 64, 32, True, gen), rtn_layer(8, 64, 16, False, gen), act_order_layer(8, 64, 32, False, gen)):
        w = ops.dequantize_w4(*storage(layer, "cpu")[:5], 64)
        assert torch.equal(w, layer.dequantize_weight(torch.float32))


def test_custom_op_cpu_reference_and_linear_shapes():
    gen = torch.Generator().manual_seed(9)
    for layer in (rtn_layer(24, 64, 32, False, gen), act_order_layer(24, 64, 32, True, gen)):
        args = storage(layer, "cpu")
        x = torch.randn(2, 3, 64, generator=gen)
        out = ops.w4a16_linear(x, *args)
        assert out.shape == (2, 3, 24) and out.dtype == x.dtype
        # on CPU the op is the reference, which is the layer's own forward
        assert torch.equal(out.reshape(6, 24), ops.w4a16_matmul_reference(x.reshape(6, 64), *args))
        torch.testing.assert_close(out, layer(x), rtol=1e-5, atol=1e-5)
        assert_close(out.reshape(6, 24), reference(x.reshape(6, 64), layer), tol=1e-5)
        # float64 is no kernel dtype: the op still answers, by the reference
        assert not ops._kernel_takes(x.double().reshape(6, 64), *args[:4], layer.bias)
        assert ops.w4a16_linear(x.double(), *args).dtype == torch.float64
        xh = x.half()
        assert ops.w4a16_linear(xh, *args).dtype == torch.float16
        assert ops.w4a16_linear(torch.randn(64, generator=gen), *args).shape == (24,)


def test_custom_op_opcheck():
    gen = torch.Generator().manual_seed(10)
    for layer in (rtn_layer(16, 64, 32, True, gen), act_order_layer(16, 64, 32, False, gen, bias=False)):
        x = torch.randn(4, 64, generator=gen)
        torch.library.opcheck(
            ops.w4a16_matmul, (x, *storage(layer, "cpu"))
        )


def test_bad_inputs_raise_value_errors_naming_the_argument():
    gen = torch.Generator().manual_seed(11)
    layer = rtn_layer(16, 64, 32, False, gen)
    qw, s, z, gi, g, b = layer.qweight, layer.scale, layer.zero, layer.g_idx, 32, layer.bias
    x = torch.randn(3, 64, generator=gen)
    fns = (ops.w4a16_matmul_triton, ops.w4a16_matmul_reference, ops.w4a16_matmul)
    cases = [
        ((torch.randn(3, 63), qw, s, z, gi, 63, b), "even"),  # K odd (g = K so only the parity is off)
        ((x, qw, s, z, gi, 24, b), "group_size"),  # K % group_size != 0
        ((x, qw, s, z, gi, 0, b), "group_size"),
        ((x, qw[:, :16], s, z, gi, g, b), "qweight"),  # wrong packed width
        ((x, qw.to(torch.int32), s, z, gi, g, b), "qweight"),
        ((x, qw, s[:, :1], z, gi, g, b), "scale"),
        ((x, qw, s, z[:8], gi, g, b), "zero"),
        ((x, qw, s, z, torch.zeros(32, dtype=torch.int32), g, b), "g_idx"),
        ((x, qw, s, z, gi, g, b[:3]), "bias"),
        ((x.long(), qw, s, z, gi, g, b), "floating"),
    ]
    for args, match in cases:
        for fn in fns:
            with pytest.raises(ValueError, match=match):
                fn(*args)
    with pytest.raises(ValueError, match="x must be a 2-D"):
        ops.w4a16_matmul_triton(torch.randn(2, 3, 64), qw, s, z, gi, g, b)


def test_torch_compile_traces_the_op():
    gen = torch.Generator().manual_seed(12)
    layer = rtn_layer(24, 64, 32, False, gen)
    args = (layer.qweight, layer.scale, layer.zero, layer.g_idx, layer.group_size, layer.bias)
    f = torch.compile(lambda x: ops.w4a16_linear(x, *args).relu(), backend="aot_eager", fullgraph=True, dynamic=True)
    for shape in ((2, 5, 64), (7, 64)):
        x = torch.randn(*shape, generator=gen)
        torch.testing.assert_close(f(x), ops.w4a16_linear(x, *args).relu())
