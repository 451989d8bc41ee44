"""Weight-only decode kernel (GEMV) and the one-pass dequantize kernel: against float64 products
computed from the codes themselves (not from lowbit's dequantize), in the Triton interpreter on CPU
and on a GPU where there is one; the op's dispatch; the layers that call it; the argument checks.

Tolerances: the kernel multiplies fp32 weight values (exact: small integers or table values times
a float32 scale) by activations that are exact in fp32, and sums K of them in fp32: relative error
~K·2^-24 ≤ 1e-4 here. The one rounding that matters is the output's, to x's dtype: 2^-8 (bf16),
2^-11 (fp16), so the element bound is that times max|ref| plus the fp32 sum's error.
"""

import json

import pytest
import torch

import lowbit
from lowbit.formats import fp
from lowbit.formats.packing import pack
from lowbit.layers.int_weight import IntWeightLinear
from lowbit.ops import tiles
from lowbit.ops import weight_only as ops

pytestmark = pytest.mark.skipif(ops.triton is None, reason="needs triton")

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# the GEMV has no tl.dot, so bf16 is right in the interpreter too
DTYPES = (torch.float32, torch.float16, torch.bfloat16)
OUT_ROUNDING = {torch.float32: 2**-24, torch.float16: 2**-11, torch.bfloat16: 2**-8}


def random_storage(n, k, bits, group_size, symmetric, gen, lut=False):
    """Codes, their packed storage and the float64 weight they stand for, built from the codes."""
    groups = k // group_size
    codes = torch.randint(0, 2**bits, (n, k), generator=gen, dtype=torch.uint8)
    scale = torch.rand(n, groups, generator=gen) * 0.1 + 0.01
    s = scale.double().repeat_interleave(group_size, dim=1)
    if lut:  # a fresh table each time (NF4's is one of them): the kernels must read whichever they are given
        table = torch.rand(16, generator=gen) * 2 - 1
        return pack(codes, bits), scale, None, table, table.double()[codes.long()] * s
    zero = None if symmetric else torch.randint(0, 2**bits, (n, groups), generator=gen, dtype=torch.uint8)
    z = 2 ** (bits - 1) if symmetric else zero.double().repeat_interleave(group_size, dim=1)
    return pack(codes, bits), scale, zero, None, (codes.double() - z) * s


def to_dev(*ts):
    return [None if t is None else t.to(DEVICE) for t in ts]


def check(out, ref, dtype, k):
    out = out.cpu().double()
    assert torch.isfinite(out).all(), "non-finite (unwritten or garbage) elements in the output"
    tol = OUT_ROUNDING[dtype] + k * 2**-24
    bound = 2 * tol * ref.abs().max() + 1e-6
    assert ((out - ref).abs() <= bound).all(), ((out - ref).abs().max().item(), bound.item())


def check_integer_kernel(run, m, n, k, g, bits, symmetric, dtypes=DTYPES):
    """run(x, q, s, z, bias) on fresh integer storage against float64, for each activation dtype;
    returns the last call's device tensors and reference for further calls."""
    gen = torch.Generator().manual_seed(hash((m, n, k, g, bits, symmetric)) % 2**31)
    q, s, z, _, w = random_storage(n, k, bits, g, symmetric, gen)
    bias = torch.randn(n, generator=gen)
    for dtype in dtypes:
        x = torch.randn(m, k, generator=gen).to(dtype)
        ref = x.double() @ w.t() + bias.double()
        args = to_dev(x, q, s, z, bias)
        check(run(*args), ref, dtype, k)
    return args, ref


def poisoned(m, n, dtype):
    return torch.full((m, n), float("nan"), dtype=dtype, device=DEVICE)


@pytest.mark.parametrize("bits,symmetric", [(4, True), (4, False), (8, True), (8, False)])
@pytest.mark.parametrize("m,n,k,g", [(1, 24, 256, 128), (3, 37, 192, 64), (2, 40, 200, 200), (1, 19, 96, 32)])
def test_gemv_matches_float64(m, n, k, g, bits, symmetric):
    """Ragged N (37, 19), K not a multiple of the chunk (200: one group a row), several groups a chunk."""
    check_integer_kernel(lambda x, q, s, z, b: ops.gemv_triton(x, q, s, z, bits, g, None, b, out=poisoned(m, n, x.dtype)),
                         m, n, k, g, bits, symmetric)


@pytest.mark.parametrize("cfg", [dict(BLOCK_N=8, TG=2), dict(BLOCK_N=32, TG=4)], ids=["bn8-tg2", "bn32-tg4"])
def test_gemv_tiles_spanning_several_groups(cfg):
    """TG chunks a K-step, each in its own group; a K-step past the end of K is masked."""
    gen = torch.Generator().manual_seed(11)
    m, n, k, g = 2, 45, 320, 32
    q, s, z, _, w = random_storage(n, k, 4, g, False, gen)
    x = torch.randn(m, k, generator=gen).to(torch.float16)
    out = ops.gemv_triton(*to_dev(x, q, s, z), 4, g, config=dict(cfg, TW=32), out=poisoned(m, n, torch.float16))
    check(out, x.double() @ w.t(), torch.float16, k)


@pytest.mark.parametrize("m,n,k,bs", [(1, 24, 128, 64), (3, 33, 192, 32)])
def test_gemv_nf4_table(m, n, k, bs):
    gen = torch.Generator().manual_seed(m + n + k + bs)
    q, s, _, lut, w = random_storage(n, k, 4, bs, True, gen, lut=True)
    x = torch.randn(m, k, generator=gen).to(torch.bfloat16)
    out = ops.gemv_triton(*to_dev(x, q, s), None, 4, bs, *to_dev(lut), out=poisoned(m, n, torch.bfloat16))
    check(out, x.double() @ w.t(), torch.bfloat16, k)


def test_gemv_propagates_nan():
    gen = torch.Generator().manual_seed(3)
    q, s, z, _, _ = random_storage(16, 128, 4, 64, False, gen)
    x = torch.randn(2, 128, generator=gen).to(torch.float16)
    x[1, 77] = float("nan")
    out = ops.gemv_triton(*to_dev(x, q, s, z), 4, 64).cpu()
    assert torch.isfinite(out[0]).all() and torch.isnan(out[1]).all()


@pytest.mark.parametrize("bits,symmetric,lut", [(4, False, False), (8, True, False), (4, True, True)])
def test_dequantize_kernel_equals_reference(bits, symmetric, lut):
    """Same fp32 arithmetic ((c − z)·s or table[c]·s) as the reference: equal to the last bit."""
    gen = torch.Generator().manual_seed(bits + 2 * symmetric + 4 * lut)
    n, k, g = 37, 192, 64
    q, s, z, table, w = random_storage(n, k, bits, g, symmetric, gen, lut=lut)
    got = ops.dequantize_triton(*to_dev(q, s, z), bits, g, k, *to_dev(table), dtype=torch.float32).cpu()
    want = ops.dequantize_reference(q, s, z, bits, g, k, table)
    assert torch.equal(got, want)
    assert torch.allclose(want.double(), w, rtol=1e-6, atol=0)


def test_op_dispatch_and_reference_path():
    """The op picks the word GEMV, the swapped MMA kernel or dequantize+cuBLAS by M on CUDA; all agree with
    the float64 product. On CPU it is the reference path."""
    gen = torch.Generator().manual_seed(5)
    n, k, g = 40, 256, 128
    q, s, z, _, w = random_storage(n, k, 4, g, False, gen)
    limits = ops.path_limits(torch.empty(0, device=DEVICE), q, 4, None) if DEVICE == "cuda" else ops.DEFAULT_LIMITS["int4"]
    for m in (1, limits["words"] + 1, limits["swapped"] + 1):
        x = torch.randn(m, k, generator=gen).to(torch.float16)
        out = ops.weight_only_matmul(*to_dev(x, q, s, z), None, 4, g, None, None)
        check(out, x.double() @ w.t(), torch.float16, k)


def test_eager_calls_skip_the_dispatch_traced_and_autograd_ones_do_not():
    """weight_only_linear calls the op's function directly in eager no-grad use (the same numbers), while
    torch.compile still sees the op, and a call that needs a gradient goes through the op and its backward."""
    gen = torch.Generator().manual_seed(31)
    q, s, z, _, w = random_storage(24, 256, 4, 128, False, gen)
    q, s, z = to_dev(q, s, z)
    x = torch.randn(2, 3, 256, generator=gen).to(DEVICE)
    with torch.no_grad():
        direct = ops.weight_only_linear(x, q, s, z, 4, 128)
    assert torch.equal(direct, ops.weight_only_matmul(x.reshape(6, 256), q, s, z, None, 4, 128, None, None).reshape(2, 3, 24))
    targets = []

    def backend(gm, example_inputs):
        targets.extend(node.target for node in gm.graph.nodes)
        return gm.forward

    with torch.no_grad():
        traced = torch.compile(lambda t: ops.weight_only_linear(t, q, s, z, 4, 128), backend=backend, fullgraph=True)(x)
    assert torch.ops.lowbit.weight_only_matmul.default in targets
    assert torch.equal(traced, direct)
    xg = x.clone().requires_grad_()
    out = ops.weight_only_linear(xg, q, s, z, 4, 128)
    assert out.grad_fn is not None  # through the op, which has a backward


def _grads(layer_fn, x, bias, out_grad):
    xg, bg = x.clone().requires_grad_(), bias.clone().requires_grad_()
    (layer_fn(xg, bg) * out_grad).sum().backward()
    return xg.grad, bg.grad


def frozen_base(storage, n, k, gen):
    """A base layer's storage as the adapter tests use it: (q, s, z, lut, g_idx, bits, group_size, w float64)."""
    g_idx, lut, bits, g = None, None, 4, 64
    if storage == "int8-channel":
        q, s, z, _, w = random_storage(n, k, 8, k, True, gen)
        bits, g = 8, k
    elif storage == "nf4-table":
        q, s, z, lut, w = random_storage(n, k, 4, 64, False, gen, lut=True)
    elif storage == "e4m3-values":
        w8 = torch.randn(n, k, generator=gen).to(torch.float8_e4m3fn)
        q, s, z, bits, g = w8, torch.rand(n, 1, generator=gen) + 0.5, None, 8, k
        w = w8.double() * s.double()
    else:
        q, s, z, _, w = random_storage(n, k, 4, 64, False, gen)
        if storage == "int4-act-order":  # each input column's group from a permutation, as GPTQ's act-order stores it
            g_idx = (torch.arange(k) // g)[torch.randperm(k, generator=gen)].to(torch.int32)
            codes = torch.stack((q & 0xF, q >> 4), dim=-1).reshape(n, k).double()
            w = (codes - z.double()[:, g_idx.long()]) * s.double()[:, g_idx.long()]
    return q, s, z, lut, g_idx, bits, g, w


@pytest.mark.parametrize("storage", ["int4-g64-zero", "int8-channel", "nf4-table", "e4m3-values", "int4-act-order", "int4-perm"])
def test_backward_gives_x_and_bias_their_gradients(storage):
    """Adapters on a frozen 4/8-bit base (QLoRA) need ∂L/∂x = g @ W and ∂L/∂bias = Σ g: against float64 from the
    codes, eager and compiled (aot_eager)."""
    gen = torch.Generator().manual_seed(sum(map(ord, storage)))  # str hashes differ run to run
    n, k, m = 40, 256, 5
    q, s, z, lut, g_idx, bits, g, w = frozen_base(storage, n, k, gen)
    perm = None
    if storage == "int4-perm":  # act-order in group order: the weight's column j multiplies x[:, perm[j]]
        perm = torch.randperm(k, generator=gen).to(torch.int32)
        w = torch.empty_like(w).index_copy_(1, perm.long(), w)  # the weight x itself meets
    x = torch.randn(m, k, generator=gen)
    bias, out_grad = torch.randn(n, generator=gen), torch.randn(m, n, generator=gen)
    q, s, z, lut, g_idx, x, bias, out_grad, perm = to_dev(q, s, z, lut, g_idx, x, bias, out_grad, perm)

    def layer(xg, bg):
        return ops.weight_only_linear(xg, q, s, z, bits, g, lut, bg, g_idx, perm)

    want_x, want_b = out_grad.double().cpu() @ w, out_grad.double().cpu().sum(0)
    for fn in (layer, torch.compile(layer, backend="aot_eager", fullgraph=True)):
        gx, gb = _grads(fn, x, bias, out_grad)
        tol = 1e-5 * want_x.abs().max()
        assert (gx.cpu().double() - want_x).abs().max() <= tol, storage
        assert (gb.cpu().double() - want_b).abs().max() <= 1e-5 * want_b.abs().max()
    bg = bias.clone().requires_grad_()  # the bias alone: x is a constant
    (layer(x, bg) * out_grad).sum().backward()
    assert (bg.grad.cpu().double() - want_b).abs().max() <= 1e-5 * want_b.abs().max()


@pytest.mark.parametrize("storage", ["int4-g64-zero", "int8-channel", "nf4-table", "e4m3-values"])
def test_backward_weight_equals_the_reference_dequantization(storage):
    """The backward's weight (`weight_only_dequantize`: one kernel pass on the GPU and in the interpreter) is the
    reference's to the last bit in every dtype it rounds to: both compute in fp32 and round once."""
    gen = torch.Generator().manual_seed(sum(map(ord, storage)) + 1)
    n, k = 24, 256
    q, s, z, lut, _, bits, g, _ = frozen_base(storage, n, k, gen)
    q, s, z, lut = to_dev(q, s, z, lut)
    dtypes = (torch.float32, torch.float16) + ((torch.bfloat16,) if DEVICE == "cuda" else ())  # the interpreter truncates to bf16
    for dtype in dtypes:
        got = ops.weight_only_dequantize(q, s, z, None, bits, g, k, lut, dtype)
        want = ops.dequantize_reference(q, s, z, bits, g, k, lut, dtype)
        assert got.dtype == dtype and torch.equal(got, want), (storage, dtype)


def test_dispatch_limits_per_gpu(tmp_path, monkeypatch):
    """A GPU's measured entry overrides the default limits it names, and only those; a GPU without one
    takes the defaults; each storage finds its kind."""
    table = tmp_path / "dispatch.json"
    table.write_text(json.dumps({"GPU A": {"limits": {"int4": {"swapped": 128}, "table4": {"gemv": 0, "swapped": 16}}}}))
    monkeypatch.setattr(ops, "DISPATCH_FILE", table)
    monkeypatch.setenv("LOWBIT_DISPATCH_FILE", str(tmp_path / "no-user-file.json"))
    ops.gpu_entry.cache_clear(), ops.dispatch_limits.cache_clear()
    try:
        a = ops.dispatch_limits("GPU A")
        with pytest.warns(UserWarning, match="no measured weight-only dispatch limits for GPU B.*lowbit bench dispatch"):
            other = ops.dispatch_limits("GPU B")
    finally:
        ops.gpu_entry.cache_clear(), ops.dispatch_limits.cache_clear()
    assert a["int4"] == {**ops.DEFAULT_LIMITS["int4"], "swapped": 128}
    assert a["table4"] == {**ops.DEFAULT_LIMITS["table4"], "gemv": 0, "swapped": 16}
    assert a["int8"] == other["int8"] == ops.DEFAULT_LIMITS["int8"] and other == ops.DEFAULT_LIMITS
    u8, i8, f8 = torch.zeros(1, dtype=torch.uint8), torch.zeros(1, dtype=torch.int8), torch.zeros(1, dtype=torch.float8_e4m3fn)
    lut = torch.zeros(16)
    assert [ops.storage_kind(u8, 4, None), ops.storage_kind(i8, 8, None), ops.storage_kind(f8, 8, None),
            ops.storage_kind(u8, 4, lut)] == ["int4", "int8", "fp8", "table4"]


def test_committed_dispatch_file_is_well_formed():
    """Every entry names a known storage kind and path with a non-negative token count."""
    for gpu, entry in json.loads(ops.DISPATCH_FILE.read_text()).items():
        for kind, limits in entry["limits"].items():
            assert kind in ops.DEFAULT_LIMITS, (gpu, kind)
            assert set(limits) <= set(ops.DEFAULT_LIMITS[kind]) and all(isinstance(v, int) and v >= 0 for v in limits.values()), (gpu, limits)


@pytest.mark.parametrize("granularity,bits", [("group", 4), ("channel", 4), ("channel", 8), ("group", 8)])
def test_int_layer_forward_through_op(granularity, bits):
    gen = torch.Generator().manual_seed(bits)
    w, b = torch.randn(48, 256, generator=gen), torch.randn(48, generator=gen)
    layer = lowbit.RTN(bits=bits, granularity=granularity, group_size=64 if granularity == "group" else None, symmetric=False).layer(w, b)
    assert isinstance(layer, IntWeightLinear)
    x = torch.randn(2, 3, 256, generator=gen).to(torch.float16)
    out = layer.to(DEVICE)(x.to(DEVICE))
    ref = x.double() @ layer.dequantize_weight(torch.float64).cpu().t() + b.double()
    assert out.shape == (2, 3, 48)
    check(out.reshape(6, 48), ref.reshape(6, 48), torch.float16, 256)


@pytest.mark.parametrize("double_quant", [False, True])
def test_nf4_layer_forward_through_op(double_quant):
    gen = torch.Generator().manual_seed(7 + double_quant)
    w = torch.randn(40, 128, generator=gen)
    layer = lowbit.NF4(block_size=64, double_quant=double_quant).layer(w, None)
    x = torch.randn(3, 128, generator=gen).to(torch.bfloat16)
    out = layer.to(DEVICE)(x.to(DEVICE))
    check(out, x.double() @ layer.dequantize_weight(torch.float64).cpu().t(), torch.bfloat16, 128)


@pytest.mark.parametrize(
    "change,match",
    [
        (dict(bits=3), "bits must be 4 or 8"),
        (dict(group_size=100), "group_size must be a positive integer dividing"),
        (dict(scale=torch.ones(8, 3)), "scale must be a float tensor of shape"),
        (dict(zero=torch.zeros(8, 2, dtype=torch.int32)), "zero must be None or a uint8"),
        (dict(qweight=torch.zeros(8, 10, dtype=torch.uint8)), "fewer than the 64"),
        (dict(lut=torch.zeros(15)), "lut must be a float32 table of 16"),
        (dict(bias=torch.zeros(9)), "bias must be None or of shape"),
    ],
)
def test_bad_arguments_are_named(change, match):
    args = dict(x=torch.randn(1, 128), qweight=torch.zeros(8, 64, dtype=torch.uint8), scale=torch.ones(8, 2),
                zero=None, g_idx=None, bits=4, group_size=64, lut=None, bias=None)
    args.update(change)
    with pytest.raises(ValueError, match=match):
        ops.weight_only_matmul(**args)


def test_decode_kernel_refuses_groups_it_cannot_cut():
    gen = torch.Generator().manual_seed(1)
    q, s, z, _, _ = random_storage(8, 96, 4, 12, False, gen)  # groups of 12: chunks of 4 columns, 2 bytes
    assert ops.gemv_config(8, 96, 4, 12) is None
    with pytest.raises(ValueError, match="decode kernel needs groups"):
        ops.gemv_triton(torch.randn(1, 96), q, s, z, 4, 12)
    assert ops.dequant_config(96, 4, 12, False) is None
    with pytest.raises(ValueError, match="group_size 12: the dequantize kernel"):
        ops.dequantize_triton(q, s, z, 4, 12, 96)
    # the op still answers, by the dequantize path
    out = ops.weight_only_matmul(torch.randn(1, 96), q, s, z, None, 4, 12, None, None)
    assert out.shape == (1, 8)


@pytest.mark.parametrize("fmt", ["e4m3", "e5m2"])
def test_gemv_fp8_codes_through_the_value_table(fmt):
    """An FP8 weight's bytes are 8-bit codes of the format's 256-value table: the GEMV with that table
    equals the float64 product of the FP8 values (taken from torch's own FP8 dtype) and the scales."""
    gen = torch.Generator().manual_seed(len(fmt))
    m, n, k = 2, 27, 192
    w = fp.quantize_fp8(torch.randn(n, k, generator=gen), fmt, "channel")
    codes, scale = w[0].view(torch.uint8), w[1]
    exact = w[0].double() * scale.double()  # torch's float8 -> float64: independent of lowbit's table
    x = torch.randn(m, k, generator=gen).to(torch.bfloat16)
    table = ops.code_table(fmt, DEVICE)
    out = ops.gemv_triton(*to_dev(x, codes, scale), None, 8, k, table, out=poisoned(m, n, torch.bfloat16))
    check(out, x.double() @ exact.t(), torch.bfloat16, k)


@pytest.mark.parametrize("granularity", ["tensor", "channel"])
def test_fp8_weight_only_layer_through_op(granularity):
    gen = torch.Generator().manual_seed(9)
    w, b = torch.randn(40, 128, generator=gen), torch.randn(40, generator=gen)
    layer = lowbit.FP8(fmt="e4m3", granularity=granularity).layer(w, b).to(DEVICE)
    x = torch.randn(3, 5, 128, generator=gen).to(torch.float16)
    out = layer(x.to(DEVICE))
    ref = x.double() @ layer.dequantize_weight(torch.float64).cpu().t() + b.double()
    check(out.reshape(15, 40), ref.reshape(15, 40), torch.float16, 128)


# ----------------------------------------------------------------------------------------------
# the word GEMV (32-bit words of codes): integer codes, signed int8, FP8 values, tables


def values_storage(n, k, dtype, gen):
    """Signed int8 codes or FP8 values [N, K] as stored, one scale a row, and the float64 weight."""
    scale = torch.rand(n, 1, generator=gen) * 0.1 + 0.01
    if dtype == torch.int8:
        q = torch.randint(-127, 128, (n, k), generator=gen, dtype=torch.int8)
    else:  # every finite value of the format, both signs, subnormals included
        q = (torch.randn(n, k, generator=gen) * 4 * torch.rand(n, 1, generator=gen)).to(dtype)
    return q, scale, q.double() * scale.double()


@pytest.mark.parametrize("bits,symmetric,g", [(4, True, 128), (4, False, 64), (4, True, 32), (8, True, 96), (8, False, 32), (8, True, None),
                                               (8, False, None), (4, False, None)])
# one token a program row: 2 covers M > 1. K = 384, the least multiple of every group size here (128, 96, 64, 32):
# 48 or 96 words, 3 or 6 of the interpreter's 16-word K-steps, which hold 1-4 groups or cut one (768 once: the same
# paths at twice the interpreter time)
@pytest.mark.parametrize("m,n,k", [(1, 21, 384), (2, 16, 384)])
def test_word_gemv_integer_codes_match_float64(m, n, k, g, bits, symmetric):
    """Ragged N (21: not a multiple of BLOCK_N), K-steps of the interpreter's 16 words and, last, a
    step that is not a whole number of times in K (the masked tail, after a whole step),
    groups of 4 to 24 words and one scale a row, symmetric and with zero points."""
    g = g or k
    (x, q, s, z, bias), ref = check_integer_kernel(lambda x, q, s, z, b: ops.gemv_words_triton(x, q, s, z, bits, g, None, b),
                                                   m, n, k, g, bits, symmetric)
    words = k * bits // 32
    # a masked K tail: one word a column, and columns of 4 words (fewer where a group has fewer), prefetched, and of 2
    # with the whole next step prefetched; a whole step first, then the tail (48 words: 32 + 16, 96: 64 + 32)
    for cols in (dict(V=1, PREFETCH=False), dict(V=4, PREFETCH=True), dict(V=2, PREFETCH=2)):
        uneven = dict(BLOCK_N=4, BLOCK_W=64 if words > 64 else 32, num_warps=1, **cols)
        assert words > uneven["BLOCK_W"] and words % uneven["BLOCK_W"]
        check(ops.gemv_words_triton(x, q, s, z, bits, g, None, bias, config=uneven), ref, x.dtype, k)
    # split-K: fp32 partials summed after, the bias added once; pieces of whole steps: K in 3 steps (of 16 or 32 words,
    # so on the GPU too, whose default step would hold all of K), in pieces of 2 steps and the last shorter (1), and of 1
    steps = dict(BLOCK_W=words // 3)
    assert words % 3 == 0 and [ops.split_k_plan(words, steps["BLOCK_W"], p) for p in (2, 3)] == [(2 * words // 3, 2), (words // 3, 3)]
    for split in (2, 3):
        check(ops.gemv_words_triton(x, q, s, z, bits, g, None, bias, config=dict(steps, SPLIT_K=split)), ref, x.dtype, k)


@pytest.mark.parametrize("bits,symmetric,g,lut", [(4, False, 128, False), (4, True, None, False), (8, True, 64, False), (4, False, 64, True)])
def test_word_gemv_reads_x_through_a_permutation(bits, symmetric, g, lut):
    """Act-order stored in group order: the weight's column j multiplies x[:, perm[j]] (x gathered by `gather_columns`
    before the word GEMV: whole steps and a masked K tail, split-K), against float64 of the gathered x; the op's other
    paths (the reference here; on a GPU also the swapped kernel, at 20 tokens on x gathered straight into the packed
    codes' K order, and dequantize + cuBLAS) take the same gathered x."""
    gen = torch.Generator().manual_seed(bits * 100 + (g or 0) + lut)
    n, k = 21, 384
    q, s, z, table, w = random_storage(n, k, bits, g or k, symmetric, gen, lut=lut)
    perm = torch.randperm(k, generator=gen).to(torch.int32)
    bias = torch.randn(n, generator=gen)
    for m in (1, 2, 20):
        x = torch.randn(m, k, generator=gen).to(torch.float16)
        ref = x.double()[:, perm.long()] @ w.t() + bias.double()
        xd, qd, sd, zd, td, bd, pd = to_dev(x, q, s, z, table, bias, perm)
        outs = [ops.weight_only_matmul(xd, qd, sd, zd, None, bits, g or k, td, bd, pd)]
        if m < 20:
            words = k * bits // 32
            outs += [ops.gemv_words_triton(xd, qd, sd, zd, bits, g or k, td, bd, perm=pd),
                     ops.gemv_words_triton(xd, qd, sd, zd, bits, g or k, td, bd, perm=pd,
                                           config=dict(BLOCK_N=4, BLOCK_W=words // 3 * 2, num_warps=1, V=1, PREFETCH=False)),
                     ops.gemv_words_triton(xd, qd, sd, zd, bits, g or k, td, bd, perm=pd, config=dict(BLOCK_W=words // 3, SPLIT_K=2))]
        for out in outs:
            check(out, ref, x.dtype, k)


@pytest.mark.parametrize("block_k", [16, 64, 128])
def test_packed_x_order_is_the_packed_tiles_layout(block_k):
    """The K column of each slot from the layout's definition: slot 16c + 8e + 2t + h of a step holds nibble h of byte
    (block_k / 8)·t + 2c + e, column 2·byte + h; a permutation of each step, steps one after another."""
    want = torch.empty(block_k, dtype=torch.int32)
    for c in range(block_k // 16):
        for e in range(2):
            for t in range(4):
                for h in range(2):
                    want[16 * c + 8 * e + 2 * t + h] = 2 * ((block_k // 8) * t + 2 * c + e) + h
    order = ops.packed_x_order(3 * block_k, block_k, torch.device("cpu"))
    assert torch.equal(order, torch.cat([want + i * block_k for i in range(3)]))
    assert torch.equal(order[:block_k].sort().values, torch.arange(block_k, dtype=torch.int32))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("largest,whole_rows", [(None, None), (1024, None), (None, 1)])
def test_gather_columns_is_x_indexed_by_perm(monkeypatch, dtype, largest, whole_rows):
    """The act-order gather kernel against torch's indexing, bit for bit (a gather rounds nothing): row and column
    counts off its tile (4 × 64 in the interpreter, one row of 1024 on a GPU), a transposed x, no rows; with `largest`
    bytes the larger inputs take `index_select`; with `whole_rows` each program takes whole rows. With order_k,
    composed with the packed codes' K order (the host's `packed_x_order`, which the swapped kernel's GPU tests check
    against float64)."""
    if largest is not None:
        monkeypatch.setattr(ops, "_GATHER_MAX_BYTES", largest)
    monkeypatch.setattr(ops, "_GATHER_WHOLE_ROWS_M", whole_rows)
    gen = torch.Generator().manual_seed(7)
    for m, k, transposed in [(1, 200, False), (5, 4096, False), (7, 130, True), (0, 64, False)]:
        x = torch.randn(k, m, generator=gen).t() if transposed else torch.randn(m, k, generator=gen)
        x = x.to(dtype)
        perm = torch.randperm(k, generator=gen).to(torch.int32)
        xd, pd = to_dev(x, perm)
        out = ops.gather_columns(xd, pd)
        assert out.shape == (m, k) and out.dtype == dtype
        assert torch.equal(out.cpu(), x[:, perm.long()])
        for order_k in (64, 128) if k % 128 == 0 else ():
            composed = perm[ops.packed_x_order(k, order_k, torch.device("cpu")).long()]
            assert torch.equal(ops.gather_columns(xd, pd, order_k).cpu(), x[:, composed.long()])
    with pytest.raises(ValueError, match="order_k must divide K = 200"):
        ops.gather_columns(torch.randn(1, 200), torch.arange(200, dtype=torch.int32), 64)


def test_a_bad_permutation_is_named():
    args = dict(x=torch.randn(1, 128), qweight=torch.zeros(8, 64, dtype=torch.uint8), scale=torch.ones(8, 2),
                zero=None, g_idx=None, bits=4, group_size=64, lut=None, bias=None)
    for perm, match in [(torch.arange(128), "perm must be None or an int32 tensor of shape"),
                        (torch.arange(64, dtype=torch.int32), r"shape \(128,\)")]:
        with pytest.raises(ValueError, match=match):
            ops.weight_only_matmul(**args, perm=perm)
    with pytest.raises(ValueError, match="perm and g_idx"):
        ops.weight_only_matmul(**{**args, "g_idx": torch.zeros(128, dtype=torch.int32)}, perm=torch.arange(128, dtype=torch.int32))
    x, q, sc = args["x"], args["qweight"], args["scale"]
    torch.library.opcheck(ops.weight_only_matmul, (x, q, sc, None, None, 4, 64, None, None, torch.randperm(128).to(torch.int32)))


@pytest.mark.parametrize("kernel", ["words", "swapped"])
@pytest.mark.parametrize("dtype_w", [torch.int8, torch.float8_e4m3fn, torch.float8_e5m2])
def test_kernels_take_the_values_themselves(dtype_w, kernel):
    """int8 (two's complement) and FP8 bytes are values, not offset codes: W8A8's and FP8's storage, through
    the word GEMV (2 tokens) and the swapped MMA kernel (5: fp16, the interpreter's bf16 dot is wrong),
    and through the op, which takes them there on CUDA (the reference elsewhere): the same numbers."""
    gen = torch.Generator().manual_seed(hash(str(dtype_w)) % 2**31)
    m, dtype, run = (2, torch.bfloat16, ops.gemv_words_triton) if kernel == "words" else (5, torch.float16, ops.mma_swapped_triton)
    n, k = 19, 320
    q, s, w = values_storage(n, k, dtype_w, gen)
    x = torch.randn(m, k, generator=gen).to(dtype)
    ref = x.double() @ w.t()
    check(run(*to_dev(x, q, s), None, 8, k), ref, dtype, k)
    check(ops.weight_only_matmul(*to_dev(x, q, s), None, None, 8, k, None, None), ref, dtype, k)


@pytest.mark.parametrize("storage", ["int4-zero", "int8-codes", "int8-values", "e4m3-values"])
def test_kernels_read_a_transposed_storage(storage):
    """A weight held transposed ([N, K] with strides (1, N): what a GPT-2 Conv1D layer's 8-bit codes once
    were) reads as its values through every kernel that takes it, not as the garbage its strides would
    give: the word GEMV, the byte GEMV, the swapped MMA kernel, dequantize, and the op."""
    gen = torch.Generator().manual_seed(hash(storage) % 2**31)
    n, k = 24, 256
    if storage.endswith("values"):
        q, s, w = values_storage(n, k, torch.int8 if storage.startswith("int8") else torch.float8_e4m3fn, gen)
        bits, g, z = 8, k, None
    else:
        bits = 4 if storage == "int4-zero" else 8
        g = 64 if bits == 4 else k
        q, s, z, _, w = random_storage(n, k, bits, g, bits == 8, gen)
    q_t = q.t().contiguous().t()  # the same values, column-major
    assert q_t.stride(1) != 1 and torch.equal(q_t, q)
    x1, x5 = torch.randn(1, k, generator=gen).to(torch.float16), torch.randn(5, k, generator=gen).to(torch.float16)
    dq, lut = (q_t.view(torch.uint8), ops.code_table("e4m3", torch.device(DEVICE))) if storage == "e4m3-values" else (q_t, None)
    check(ops.gemv_words_triton(*to_dev(x1, q_t, s, z), bits, g), x1.double() @ w.t(), torch.float16, k)
    check(ops.mma_swapped_triton(*to_dev(x5, q_t, s, z), bits, g), x5.double() @ w.t(), torch.float16, k)
    check(ops.weight_only_matmul(*to_dev(x5, q_t, s, z), None, bits, g, None, None), x5.double() @ w.t(), torch.float16, k)
    if storage != "int8-values":  # signed int8 values take neither the byte GEMV nor dequantize (the op never sends them there)
        check(ops.gemv_triton(*to_dev(x1, dq, s, z), bits, g, lut), x1.double() @ w.t(), torch.float16, k)
        deq = ops.dequantize_triton(*to_dev(dq, s, z), bits, g, k, lut, torch.float32)
        assert torch.allclose(deq.cpu().double(), w, rtol=2**-23, atol=0)


def test_word_gemv_tables_match_float64():
    gen = torch.Generator().manual_seed(5)
    m, n, k, g = 1, 24, 256, 64
    q, s, _, table, w = random_storage(n, k, 4, g, True, gen, lut=True)
    x = torch.randn(m, k, generator=gen).to(torch.float16)
    out = ops.gemv_words_triton(*to_dev(x, q, s), None, 4, g, table.to(DEVICE))
    check(out, x.double() @ w.t(), torch.float16, k)


def test_word_gemv_refuses_what_is_not_whole_words():
    gen = torch.Generator().manual_seed(6)
    q, s, z, _, _ = random_storage(4, 36, 4, 12, True, gen)  # 36 codes: 4.5 words a row
    with pytest.raises(ValueError, match="multiples of 32"):
        ops.gemv_words_triton(torch.randn(1, 36, device=DEVICE), *to_dev(q, s, z), 4, 12)
    q8, s8, _ = values_storage(4, 32, torch.int8, gen)
    with pytest.raises(ValueError, match="bits must be 8"):
        ops.weight_only_matmul(torch.randn(1, 64, device=DEVICE), q8.to(DEVICE).view(4, 32), s8.to(DEVICE), None, None, 4, 64, None, None)


# ----------------------------------------------------------------------------------------------
# the few-token MMA kernel (tl.dot: fp16 and fp32 only in the interpreter, whose bf16 dot is wrong)

MMA_DTYPES = (torch.float32, torch.float16, torch.bfloat16) if DEVICE == "cuda" else (torch.float32, torch.float16)


@pytest.mark.parametrize("bits,symmetric,g,k", [(4, True, 128, 256), (4, False, 32, 160), (8, True, None, 168), (8, False, 64, 192),
                                                 (4, False, None, 200)])
@pytest.mark.parametrize("m,n,split", [(3, 33, 1), (17, 16, 3)])
def test_mma_swapped_matches_float64(m, n, split, k, g, bits, symmetric):
    """The swapped-operand kernel: M not a multiple of BLOCK_M (3, 17), ragged N (33), split-K, K tails
    (168, 200: not a multiple of the step), nibbles interleaved back in order, groups and one scale a row."""
    g = g or k
    check_integer_kernel(lambda x, q, s, z, b: ops.mma_swapped_triton(x, q, s, z, bits, g, None, b, config=dict(SPLIT_K=split)),
                         m, n, k, g, bits, symmetric, MMA_DTYPES)


@pytest.mark.skipif(DEVICE != "cuda", reason="inline PTX: the GPU only")
@pytest.mark.parametrize("block_k,g,k", [(16, 64, 320), (32, 32, 160), (64, 128, 384), (128, 128, 384), (128, None, 200)])
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("m", [1, 16, 19])
def test_mma_swapped_packed_codes_match_float64(m, symmetric, block_k, g, k):
    """4-bit codes two at a time (`_packed_codes`, the K order permuted in both operands): each K-step size,
    groups and one scale a row, the K tail (200), ragged N, fp16 and bf16."""
    g = g or k
    assert ops._packable(torch.empty(1, dtype=torch.bfloat16), 4, "int", block_k)  # this test reaches the packed path
    check_integer_kernel(lambda x, q, s, z, b: ops.mma_swapped_triton(x, q, s, z, 4, g, None, b, config=dict(BLOCK_K=block_k, SPLIT_K=2)),
                         m, 200, k, g, 4, symmetric, (torch.float16, torch.bfloat16))


@pytest.mark.skipif(DEVICE != "cuda", reason="inline PTX: the GPU only")
@pytest.mark.parametrize("lut", [False, True])
@pytest.mark.parametrize("m,block_m", [(17, 32), (40, 64), (64, 64), (100, 128)])
def test_mma_swapped_packed_codes_on_x_gathered_into_their_order_match_float64(m, block_m, lut):
    """XPERM: x gathered into the packed codes' K order (`packed_x_order`) so that tiles taller than 16 tokens take the
    packed codes (integer codes and a table's), ragged M and N, groups of 64 and 128, a split K; one scale a row too;
    and x gathered by the caller (X_ORDERED), bit for bit the same."""
    gen = torch.Generator().manual_seed(m * 2 + lut)
    for g, k, block_k in [(64, 320, 64), (128, 384, 128), (None, 256, 128)]:
        assert k % block_k == 0 and ops._packable(torch.empty(1, dtype=torch.bfloat16), 4, "lut" if lut else "int", block_k)
        g = g or k
        q, s, z, table, w = random_storage(70, k, 4, g, lut, gen, lut=lut)  # integer codes with zero points, tables without
        bias = torch.randn(70, generator=gen)
        for dtype in (torch.float16, torch.bfloat16):
            x = torch.randn(m, k, generator=gen).to(dtype)
            cfg = dict(BLOCK_M=block_m, BLOCK_K=block_k, SPLIT_K=2, XPERM=True, FOLD=False)
            xd, qd, sd, zd, td, bd = to_dev(x, q, s, z, table, bias)
            out = ops.mma_swapped_triton(xd, qd, sd, zd, 4, g, td, bd, config=cfg)
            check(out, x.double() @ w.t() + bias.double(), dtype, k)
            # x gathered by the caller (X_ORDERED): the same kernel on the same operands
            xo = ops.gather_columns(xd, ops.packed_x_order(k, block_k, xd.device))
            given = ops.mma_swapped_triton(xo, qd, sd, zd, 4, g, td, bd, config={**cfg, "XPERM": False, "X_ORDERED": True})
            assert torch.equal(given, out)


def test_x_given_in_the_packed_order_is_refused_where_the_codes_cannot_be_packed():
    """X_ORDERED (x already in the packed codes' K order) with codes the kernel would take one at a time would pair x
    with the wrong codes: refused, naming the option (here: fp32 x, and the interpreter, which cannot pack)."""
    gen = torch.Generator().manual_seed(9)
    q, s, z, _, _ = random_storage(16, 128, 4, 64, False, gen)
    x = torch.randn(2, 128, generator=gen)
    with pytest.raises(ValueError, match="X_ORDERED"):
        ops.mma_swapped_triton(*to_dev(x, q, s, z), 4, 64, config=dict(X_ORDERED=True))


def test_swapped_config_gives_code_tables_their_options(monkeypatch):
    """NF4's measured options (sessions 22-23): x gathered into the packed order past 16 tokens, and on the 128-token
    tile the scales folded into the packed values; integer codes take neither."""
    monkeypatch.setattr(ops, "interpreting", lambda: False)
    both = {"XPERM": True, "FOLD": True}
    for m, want in [(16, {}), (17, {"XPERM": True}), (64, {"XPERM": True}), (65, both), (128, both), (256, both)]:
        cfg = ops.swapped_config(m, 4096, 4096, 4, 64, table=True)
        assert {key: cfg[key] for key in ("XPERM", "FOLD") if key in cfg} == want, m
        assert "XPERM" not in ops.swapped_config(m, 4096, 4096, 4, 128) and "FOLD" not in ops.swapped_config(m, 4096, 4096, 4, 128)


@pytest.mark.parametrize("bits,symmetric,g,k,lut", [(4, False, 32, 160, False), (4, True, 128, 256, False), (4, True, 64, 256, True),
                                                     (8, False, 64, 192, False), (8, True, None, 168, False)])
@pytest.mark.parametrize("m,split", [(3, 1), (17, 3)])
def test_mma_swapped_folded_scales_match_float64_of_the_rounded_weight(m, split, bits, symmetric, g, k, lut):
    """FOLD: each code's value times its group scale, (c − z)·s in fp32 rounded once to x's dtype (the dequantize
    path's weight), then the MMA in fp32; against float64 of exactly that weight, to the unfolded kernel's tolerance.
    Packed 4-bit codes (GPU, 16-bit x) fold by a packed product instead: v·s with v (c − z, or the table's value) and s
    each rounded to x's dtype, the product rounded once; against float64 of that weight. One scale a row (g None)
    ignores FOLD."""
    g = g or k
    gen = torch.Generator().manual_seed(hash((m, bits, g, k, lut)) % 2**31)
    q, s, z, table, w = random_storage(33, k, bits, g, symmetric, gen, lut=lut)
    bias = torch.randn(33, generator=gen)
    s64 = s.double().repeat_interleave(g, dim=1)
    for dtype in MMA_DTYPES:
        x = torch.randn(m, k, generator=gen).to(dtype)
        w_used = w.float().to(dtype) if g < k else w  # fp32's product of two fp32 numbers is float64's, rounded
        runs = [(dict(PACKED=False), w_used)]
        if bits == 4 and dtype != torch.float32 and ops._packable(x.to(DEVICE), 4, "lut" if lut else "int", 16):
            # w / s is v exactly (w is the exact float64 product); float64 multiplies two 16-bit values exactly
            v_s = (w / s64).to(dtype).double() * s.to(dtype).double().repeat_interleave(g, dim=1)
            runs.append((dict(PACKED=True), v_s.to(dtype) if g < k else w))
        for cfg, weight in runs:
            ref = x.double() @ weight.double().t() + bias.double()
            out = ops.mma_swapped_triton(*to_dev(x, q, s, z), bits, g, *to_dev(table, bias), config=dict(SPLIT_K=split, FOLD=True, **cfg))
            check(out, ref, dtype, k)


def test_mma_swapped_split_k_sums_in_the_kernel_and_leaves_its_counters_zero():
    """Split-K's last program of each tile sums the partials: calls of several splits and tile counts one after
    another, twice, each against float64, and every counter back at zero after (the next call relies on it);
    on the GPU also replayed as a CUDA graph."""
    gen = torch.Generator().manual_seed(43)
    cases = []
    for n, k, split in [(33, 256, 2), (70, 384, 3), (16, 512, 8)]:
        q, s, z, _, w = random_storage(n, k, 4, 128, False, gen)
        cases.append((to_dev(q, s, z), w, split, k))
    x = {k: torch.randn(5, k, generator=gen).to(torch.float16) for k in (256, 384, 512)}
    x_dev = {k: t.to(DEVICE) for k, t in x.items()}

    def run():
        return [ops.mma_swapped_triton(x_dev[k], *st, 4, 128, config=dict(SPLIT_K=split)) for st, w, split, k in cases]

    for _ in range(2):
        for out, (_, w, _, k) in zip(run(), cases):
            check(out, x[k].double() @ w.t(), torch.float16, k)
    assert all(int(c.abs().sum()) == 0 for c in tiles._COUNTERS.values())
    if DEVICE == "cuda":
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            outs = run()
        for _ in range(3):
            for o in outs:
                o.fill_(float("nan"))
            graph.replay()
            for out, (_, w, _, k) in zip(outs, cases):
                check(out, x[k].double() @ w.t(), torch.float16, k)
        assert all(int(c.abs().sum()) == 0 for c in tiles._COUNTERS.values())


@pytest.mark.skipif(DEVICE != "cuda", reason="the GPU's tiles: the interpreter takes 16-token ones")
@pytest.mark.parametrize("storage", ["int8-channel", "int8-values", "e4m3-values"])
def test_mma_swapped_tall_tiles_of_8_bit_storage_match_float64(storage):
    """129-256 tokens of 8-bit storage take 128-token tiles (`swapped_config`): ragged M and N, several m-tiles."""
    gen = torch.Generator().manual_seed(44)
    m, n, k = 200, 136, 384
    assert ops.swapped_config(m, n, k, 8, k)["BLOCK_M"] == 128
    if storage == "int8-channel":
        q, s, z, _, w = random_storage(n, k, 8, k, True, gen)
    else:
        (q, s, w), z = values_storage(n, k, torch.int8 if storage == "int8-values" else torch.float8_e4m3fn, gen), None
    for dtype in (torch.float16, torch.bfloat16):
        x = torch.randn(m, k, generator=gen).to(dtype)
        check(ops.mma_swapped_triton(*to_dev(x, q, s, z), 8, k), x.double() @ w.t(), dtype, k)


def test_mma_swapped_refuses_what_it_cannot_cut():
    gen = torch.Generator().manual_seed(12)
    q, s, z, _, _ = random_storage(8, 96, 4, 24, True, gen)  # a 24-code group: no K-step of 16+ inside it
    with pytest.raises(ValueError, match="at least 16 codes inside a group"):
        ops.mma_swapped_triton(torch.randn(4, 96, device=DEVICE, dtype=torch.float16), *to_dev(q, s, z), 4, 24)


@pytest.mark.parametrize("m", [1, 5])
def test_tables_changed_or_new_are_read_afresh(m):
    """Whatever table the kernels are given is what they read: a new one, or one changed in place (the byte and
    word GEMVs at one token, the swapped MMA kernel at five, dequantize); a kernel-side cache of a table's
    derived form (session 7 tried a pair table) must not serve a stale one."""
    gen = torch.Generator().manual_seed(21 + m)
    n, k, g = 16, 128, 64
    q, s, _, table, _ = random_storage(n, k, 4, g, True, gen, lut=True)
    codes = torch.stack((q & 0xF, q >> 4), dim=-1).reshape(n, k).long()
    x = torch.randn(m, k, generator=gen).to(torch.float16)
    scale = s.double().repeat_interleave(g, dim=1)
    lut = table.to(DEVICE)
    for step in range(3):
        if step == 1:
            lut = (torch.rand(16, generator=gen) * 2 - 1).to(DEVICE)  # a new table
        if step == 2:
            lut.mul_(-0.5)  # the same tensor, changed in place
        w = lut.cpu().double()[codes] * scale
        for run in (ops.gemv_triton, ops.gemv_words_triton) if m == 1 else (ops.mma_swapped_triton,):
            check(run(*to_dev(x, q, s), None, 4, g, lut), x.double() @ w.t(), torch.float16, k)
        deq = ops.dequantize_triton(q.to(DEVICE), s.to(DEVICE), None, 4, g, k, lut, torch.float32)
        assert torch.allclose(deq.cpu().double(), w, rtol=2**-23, atol=0)


def test_mma_swapped_tables_match_float64():
    """A code table (NF4's 16 values): one shared-memory lookup a code, groups and a split K."""
    gen = torch.Generator().manual_seed(13)
    m, n, k, g = 6, 20, 256, 64
    q, s, _, table, w = random_storage(n, k, 4, g, True, gen, lut=True)
    x = torch.randn(m, k, generator=gen).to(torch.float16)
    out = ops.mma_swapped_triton(*to_dev(x, q, s), None, 4, g, table.to(DEVICE), config=dict(SPLIT_K=2))
    check(out, x.double() @ w.t(), torch.float16, k)


def _run_ptx(asm: str, operands: dict[int, int]) -> dict[int, int]:
    """The 32-bit integer PTX of an inline-asm block (shl, shr, and, prmt in its default mode, lop3), run on
    Python ints: the PTX ISA's definitions, so that the text itself is checked without a GPU."""
    regs = {f"${i}": v for i, v in operands.items()}
    mask32 = 0xFFFFFFFF

    def val(tok):
        return int(tok, 16) if tok.startswith("0x") else int(tok) if tok.isdigit() else regs[tok]

    for line in asm.split("\n"):
        line = line.strip().rstrip(";")
        if not line or line in "{}" or line.startswith(".reg"):
            continue
        op, args = line.split(None, 1)
        d, *src = [a.strip() for a in args.split(",")]
        a = [val(t) for t in src]
        if op == "shl.b32":
            regs[d] = (a[0] << a[1]) & mask32
        elif op == "shr.b32":
            regs[d] = a[0] >> a[1]
        elif op == "and.b32":
            regs[d] = a[0] & a[1]
        elif op == "prmt.b32":
            pool, out = a[0] | (a[1] << 32), 0
            for k in range(4):
                sel = (a[2] >> (4 * k)) & 0xF
                byte = (pool >> (8 * (sel & 7))) & 0xFF
                if sel & 8:  # sign-replicate: the selected byte's msb in all 8 bits
                    byte = 0xFF if byte & 0x80 else 0
                out |= byte << (8 * k)
            regs[d] = out
        elif op == "lop3.b32":
            lut, out = a[3], 0
            for bit in range(32):
                i = (((a[0] >> bit) & 1) << 2) | (((a[1] >> bit) & 1) << 1) | ((a[2] >> bit) & 1)
                out |= ((lut >> i) & 1) << bit
            regs[d] = out
        else:
            raise AssertionError(f"the emulator does not know {op}")
    return {i: regs[f"${i}"] for i in range(4)}


def _table_word_values(bits16: list[int]) -> list[int]:
    """L0-L3, H0-H3 of `_table_words` from a table's 16-bit patterns, in Python."""
    return [sum(((bits16[4 * j + t] >> (8 * high)) & 0xFF) << (8 * t) for t in range(4)) for high in (0, 1) for j in range(4)]


@pytest.mark.skipif(ops.triton is None, reason="needs triton")
def test_table_pairs_ptx_looks_up_both_nibbles_of_every_byte():
    """The PTX text of `_table_pairs`, run by the ISA's definitions: every byte value in every position of the
    word, each of its four output pairs (table[low nibble], table[high nibble]), on fresh random 16-bit tables."""
    gen = torch.Generator().manual_seed(17)
    asm = ops._table_pairs_asm()
    for _ in range(3):
        table = torch.randint(0, 2**16, (16,), generator=gen).tolist()
        words = _table_word_values(table)
        operands = {5 + 4 * j: words[j] for j in range(4)} | {21 + 4 * j: words[4 + j] for j in range(4)}
        for v in range(256):
            word = int.from_bytes(bytes([v, (v * 7 + 3) % 256, (v * 13 + 5) % 256, 255 - v]), "little")
            out = _run_ptx(asm, {4: word, **operands})
            for i in range(4):
                byte = (word >> (8 * i)) & 0xFF
                assert out[i] == table[byte & 0xF] | (table[byte >> 4] << 16), (hex(word), i)


if ops.triton is not None:
    import triton
    import triton.language as tl

    @triton.jit
    def _table_words_probe(lut_ptr, out_ptr, FP16: tl.constexpr):
        if FP16:
            words = ops._table_words(lut_ptr, tl.float16)
        else:
            words = ops._table_words(lut_ptr, tl.bfloat16)
        for j in tl.static_range(8):
            tl.store(out_ptr + j, words[j])


@pytest.mark.skipif(ops.triton is None, reason="needs triton")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_table_words_hold_the_bytes_of_the_table_rounded_to_x_dtype(dtype):
    table = torch.rand(16, generator=torch.Generator().manual_seed(5)) * 2 - 1
    out = torch.zeros(8, dtype=torch.int32, device=DEVICE)
    _table_words_probe[(1,)](table.to(DEVICE), out, FP16=dtype == torch.float16)
    bits16 = (table.to(dtype).view(torch.int16).int() & 0xFFFF).tolist()
    want = [w - (1 << 32) if w >= 1 << 31 else w for w in _table_word_values(bits16)]
    if dtype == torch.bfloat16 and DEVICE == "cpu":  # the interpreter truncates fp32 → bf16 (the GPU rounds): its own bytes
        bits16 = (torch.tensor(table.numpy().view("int32") >> 16, dtype=torch.int32) & 0xFFFF).tolist()
        want = [w - (1 << 32) if w >= 1 << 31 else w for w in _table_word_values(bits16)]
    assert out.cpu().tolist() == want


@pytest.mark.skipif(DEVICE != "cuda", reason="inline PTX: the GPU only")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("m", [1, 16, 19])
def test_mma_swapped_packed_tables_match_float64(monkeypatch, m, dtype):
    """A code table's 4-bit codes two at a time from registers (`_packed_table`, PACKED_TABLES): groups of 64 and
    one scale a row, the K tail, ragged N, a split K; the shared-memory lookup's answer too (the same MMA operands,
    summed in another K order inside each MMA, so to the same bound rather than bit for bit)."""
    gen = torch.Generator().manual_seed(m + 3)
    for n, k, g in [(200, 384, 64), (70, 200, 200)]:
        q, s, _, table, w = random_storage(n, k, 4, g, True, gen, lut=True)
        x = torch.randn(m, k, generator=gen).to(dtype)
        monkeypatch.setattr(ops, "PACKED_TABLES", False)
        gathered = ops.mma_swapped_triton(*to_dev(x, q, s), None, 4, g, table.to(DEVICE), config=dict(SPLIT_K=2))
        monkeypatch.setattr(ops, "PACKED_TABLES", True)
        assert ops._packable(x, 4, "lut", 64)  # this test reaches the packed path
        out = ops.mma_swapped_triton(*to_dev(x, q, s), None, 4, g, table.to(DEVICE), config=dict(SPLIT_K=2))
        check(out, x.double() @ w.t(), dtype, k)
        check(gathered, x.double() @ w.t(), dtype, k)


_SM90_PACKED_TABLES = """
import sys
sys.path.insert(0, sys.argv[1])
from sm90_asm import compile_sm90, sass
from lowbit.ops import weight_only as wo
for x, block_m, ordered in (("*bf16", 16, False), ("*fp16", 16, False), ("*bf16", 64, True)):
    args = {"x_ptr": x, "q_ptr": "*u8", "s_ptr": "*fp32", "z_ptr": "*u8", "lut_ptr": "*fp32", "bias_ptr": "*fp32", "out_ptr": x,
            "sum_ptr": x, "count_ptr": "*i32", "M": block_m, "N": 11008, "K": 4096, "k_per_split": 1024, "n_split": 4,
            "stride_xm": 4096, "stride_qn": 2048, "stride_sn": 64, "stride_zn": 64, "stride_os": 11008 * block_m, "stride_om": 11008}
    k = compile_sm90(wo._mma_swapped_kernel, args, dict(BITS=4, VALUES="lut", HAS_ZERO=False, GROUP=64, HAS_BIAS=False,
                     EVEN_K=True, DOT_PRECISION="tf32", PACKED=True, SUM_HERE=True, BLOCK_M=block_m, BLOCK_N=64, BLOCK_K=64,
                     FOLD=False, X_ORDERED=ordered))
    print(x, "spills" if "STL" in sass(k) else "ok")
"""


@pytest.mark.skipif(ops.triton is None, reason="needs triton")
def test_packed_tables_compile_for_sm90_without_spills():
    """The register lookups (inline PTX, which the interpreter cannot run) assemble for the H100/H200, bf16 and fp16 x,
    and on a 64-token tile with x gathered into their order (X_ORDERED), with nothing spilled: ptxas checks them on a machine without a GPU (a subprocess: the suite runs the interpreter)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    bench = os.path.join(os.path.dirname(__file__), "..", "benchmarks")
    out = subprocess.run([sys.executable, "-c", _SM90_PACKED_TABLES, bench], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["*bf16", "ok", "*fp16", "ok", "*bf16", "ok"], out.stdout
