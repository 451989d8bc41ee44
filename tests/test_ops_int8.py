"""Scaled INT8 matmul and fused per-token quantization: the Triton kernels (in the interpreter on
CPU, on the GPU where there is one) against float64 references, on fresh random inputs."""

import pytest
import torch

from lowbit.formats import int as intfmt
from lowbit.ops import int8 as ops

pytestmark = pytest.mark.skipif(ops.triton is None, reason="needs triton")

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def rand_int8(*shape, gen):
    return torch.randint(-127, 128, shape, dtype=torch.int8, generator=gen).to(DEVICE)


def reference(a, b, sa, sb, bias=None):
    out = (a.double() @ b.double()) * sa.double()[:, None] * sb.double()[None, :]
    return out if bias is None else out + bias.double()


@pytest.mark.parametrize("layout", ["a@bT", "a@b", "aT@b"])
@pytest.mark.parametrize("m,n,k", [(1, 40, 64), (17, 33, 77), (50, 64, 96)])
def test_scaled_mm_layouts_match_float64(layout, m, n, k):
    gen = torch.Generator().manual_seed(hash((layout, m, n, k)) % 2**31)
    # the three layouts of training: forward A@Bᵀ (weights [N, K]), grad-input A@B, grad-weight Aᵀ@B
    if layout == "a@bT":
        a, b = rand_int8(m, k, gen=gen), rand_int8(n, k, gen=gen).t()
    elif layout == "a@b":
        a, b = rand_int8(m, k, gen=gen), rand_int8(k, n, gen=gen)
    else:
        a, b = rand_int8(k, m, gen=gen).t(), rand_int8(k, n, gen=gen)
    sa = (torch.rand(m, generator=gen) + 0.1).to(DEVICE) / 127
    sb = (torch.rand(n, generator=gen) + 0.1).to(DEVICE) / 127
    bias = torch.randn(n, generator=gen).to(DEVICE)
    for dtype in (torch.float32, torch.float16):
        out = ops.scaled_int8_mm_triton(a, b, sa, sb, bias, out_dtype=dtype)
        assert out.dtype == dtype and out.shape == (m, n) and torch.isfinite(out).all()
        ref = reference(a.cpu(), b.cpu(), sa.cpu(), sb.cpu(), bias.cpu())
        # int32 accumulation is exact; only the epilogue's float32 products and the output cast round
        tol = 1e-6 if dtype == torch.float32 else 1e-3
        err = ((out.cpu().double() - ref).norm() / ref.norm()).item()
        assert err <= tol, err


@pytest.mark.parametrize("k", [256, 200])
def test_scaled_mm_large_m_matches_float64(k):
    """M above TUNED_MIN_M: the autotuned kernel on the GPU (every tile it tries must be right), the
    fixed tiles in the interpreter; K a multiple of the 128-deep tile or not (masked K tail)."""
    gen = torch.Generator().manual_seed(k)
    m, n = ops.TUNED_MIN_M + 9, 72
    a, b = rand_int8(m, k, gen=gen), rand_int8(n, k, gen=gen).t()
    sa, sb = (torch.rand(m, generator=gen) + 0.1).to(DEVICE) / 127, (torch.rand(n, generator=gen) + 0.1).to(DEVICE) / 127
    out = ops.scaled_int8_mm_triton(a, b, sa, sb, out_dtype=torch.float32)
    ref = reference(a.cpu(), b.cpu(), sa.cpu(), sb.cpu())
    assert ((out.cpu().double() - ref).norm() / ref.norm()).item() <= 1e-6


@pytest.mark.skipif(DEVICE != "cuda", reason="the autotuned kernel runs on the GPU only")
def test_scaled_mm_tunes_once_for_prefill_lengths_in_one_power_of_two():
    """Lengths 600 and 1000 share one tuned tile (both key as 1024), 1500 gets its own: a new prefill length must
    not re-time six tiles. Each result is still right."""
    gen = torch.Generator().manual_seed(3)
    k, n = 200, 136  # a shape no other test tunes for; rows of 200 bytes are not 16-byte aligned: no TMA kernel
    b = rand_int8(n, k, gen=gen).t()
    sb = (torch.rand(n, generator=gen) + 0.1).to(DEVICE) / 127
    before = len(ops._scaled_mm_tuned.cache)
    for m, tuned in [(600, 1), (1000, 1), (1500, 2)]:
        a = rand_int8(m, k, gen=gen)
        sa = (torch.rand(m, generator=gen) + 0.1).to(DEVICE) / 127
        out = ops.scaled_int8_mm_triton(a, b, sa, sb, out_dtype=torch.float32)
        ref = reference(a.cpu(), b.cpu(), sa.cpu(), sb.cpu())
        assert ((out.cpu().double() - ref).norm() / ref.norm()).item() <= 1e-6
        assert len(ops._scaled_mm_tuned.cache) - before == tuned, (m, ops._scaled_mm_tuned.cache.keys())


TMA_SMALL = dict(BLOCK_M=16, BLOCK_N=32, BLOCK_K=32, GROUP_M=4, num_warps=4, num_stages=1)  # interpreter-sized


@pytest.mark.parametrize("m,n,k", [(37, 40, 80), (16, 64, 32), (70, 96, 48)])
def test_scaled_mm_tma_matches_float64(m, n, k):
    """The persistent TMA kernel (K-major operands): M, N and K off the tile (the copy engine zero-fills the
    K tail and clips the stores), bias, every output dtype; outputs poisoned first, ones scales exact too.
    Interpreter-sized tiles on the CPU, the kernel's own tile on the GPU (4 programs or one an SM)."""
    gen = torch.Generator().manual_seed(m * n + k)
    a, bt = rand_int8(m, k, gen=gen), rand_int8(n, k, gen=gen)
    sa = (torch.rand(m, generator=gen) + 0.1).to(DEVICE) / 127
    sb = (torch.rand(n, generator=gen) + 0.1).to(DEVICE) / 127
    bias = torch.randn(n, generator=gen).to(DEVICE)
    tile = None if DEVICE == "cuda" else TMA_SMALL
    ref = reference(a.cpu(), bt.cpu().t(), sa.cpu(), sb.cpu(), bias.cpu())
    for dtype, tol in [(torch.float32, 1e-6), (torch.bfloat16, 8e-3), (torch.float16, 1e-3)]:
        torch.manual_seed(0)
        out = ops.scaled_int8_mm_tma(a, bt, sa, sb, bias, dtype, tile)
        assert out.dtype == dtype and out.shape == (m, n) and torch.isfinite(out).all()
        err = ((out.cpu().double() - ref).norm() / ref.norm()).item()
        assert err <= tol, (dtype, err)
    ones_m, ones_n = torch.ones(m, device=DEVICE), torch.ones(n, device=DEVICE)
    exact = ops.scaled_int8_mm_tma(a, bt, ones_m, ones_n, None, torch.float32, tile)
    assert torch.equal(exact.cpu().double(), (a.cpu().long() @ bt.cpu().long().t()).double())


@pytest.mark.parametrize("rows,cols,pad", [(70, 45, 0), (128, 64, 0), (33, 200, 5), (0, 45, 3)])
@pytest.mark.parametrize("dtype", [torch.int8, torch.bfloat16, torch.float8_e4m3fn])
def test_row_major_copy_equals_contiguous(rows, cols, pad, dtype):
    """A transposed view (column-major, its columns maybe padded) copied row-major by the kernel: the same values
    as torch's copy; what is not a transposed view is torch's copy."""
    gen = torch.Generator().manual_seed(rows * cols + pad)
    base = torch.randint(-127, 128, (cols, rows + pad), dtype=torch.int8, generator=gen).to(dtype).to(DEVICE)
    x = base[:, :rows].t()  # [rows, cols], strides (1, rows + pad)
    y = ops.row_major_copy(x)
    assert y.is_contiguous() and y.dtype == dtype and torch.equal(y.view(torch.uint8) if dtype.itemsize == 1 else y,
                                                                  x.contiguous().view(torch.uint8) if dtype.itemsize == 1 else x.contiguous())
    z = base[:, :rows]  # row-major already: copied as torch copies it
    assert torch.equal(ops.row_major_copy(z).float(), z.contiguous().float())


@pytest.mark.skipif(DEVICE != "cuda", reason="TMA: a Hopper GPU")
@pytest.mark.parametrize("layout", ["a@b", "aT@b"])
def test_scaled_mm_copies_a_transposed_operand_k_major_for_the_tma_kernel(monkeypatch, layout):
    """Above TUNED_MIN_M on Hopper, A@B and Aᵀ@B take the TMA op on K-major copies: the float64 product, and bit for
    bit what A@Bᵀ on the same values gives; the caller's operands are left as they were."""
    if torch.cuda.get_device_capability()[0] != 9:
        pytest.skip("the TMA kernel is taken on sm_90 only")
    gen = torch.Generator().manual_seed(len(layout))
    m, n, k = 1000, 264, 208
    a = rand_int8(m, k, gen=gen) if layout == "a@b" else rand_int8(k, m, gen=gen).t()
    b = rand_int8(k, n, gen=gen)
    sa, sb = (torch.rand(m, generator=gen) + 0.1).to(DEVICE) / 127, (torch.rand(n, generator=gen) + 0.1).to(DEVICE) / 127
    a_before, b_before = a.clone(), b.clone()
    calls = []
    tma_op = ops._scaled_mm_tma_op
    monkeypatch.setattr(ops, "_scaled_mm_tma_op", lambda *args: calls.append(args[0].stride()) or tma_op(*args))
    out = ops.scaled_int8_mm_triton(a, b, sa, sb, out_dtype=torch.float32)
    assert calls == [(k, 1)]
    ref = reference(a.cpu(), b.cpu(), sa.cpu(), sb.cpu())
    assert ((out.cpu().double() - ref).norm() / ref.norm()).item() <= 1e-6
    assert torch.equal(out, ops.scaled_int8_mm_triton(a.contiguous(), b.t().contiguous().t(), sa, sb, out_dtype=torch.float32))
    assert torch.equal(a, a_before) and torch.equal(b, b_before)


@pytest.mark.skipif(DEVICE != "cuda", reason="the Gluon ping-pong: a Hopper GPU")
@pytest.mark.parametrize("m", [ops.PINGPONG_MIN_M + 1, 300, ops.TUNED_MIN_M])
def test_scaled_mm_past_pingpong_min_m_takes_the_pingpong_on_k_major_operands(monkeypatch, m):
    """Prefill lengths between PINGPONG_MIN_M and TUNED_MIN_M: K-major operands (W8A8's) go through the TMA op, a
    transposed one keeps the pointer kernel; both right against float64, a ragged M and N too."""
    if torch.cuda.get_device_capability()[0] != 9 or ops.int8_hopper.gluon is None:
        pytest.skip("the ping-pong is taken on sm_90 with Gluon only")
    gen = torch.Generator().manual_seed(m)
    n, k = 264, 208
    calls = []
    tma_op = ops._scaled_mm_tma_op
    monkeypatch.setattr(ops, "_scaled_mm_tma_op", lambda *args: calls.append(1) or tma_op(*args))
    sa, sb = (torch.rand(m, generator=gen) + 0.1).to(DEVICE) / 127, (torch.rand(n, generator=gen) + 0.1).to(DEVICE) / 127
    for a, b, want in [(rand_int8(m, k, gen=gen), rand_int8(n, k, gen=gen).t(), [1]), (rand_int8(m, k, gen=gen), rand_int8(k, n, gen=gen), [])]:
        calls.clear()
        out = ops.scaled_int8_mm_triton(a, b, sa, sb, out_dtype=torch.bfloat16)
        assert calls == want
        ref = reference(a.cpu(), b.cpu(), sa.cpu(), sb.cpu())
        # exact int32 sums; each output rounded once to bf16, at most 2^-8 relative (the GPU saw 1.66e-3)
        assert ((out.cpu().double() - ref).norm() / ref.norm()).item() <= 2**-8


@pytest.mark.skipif(DEVICE != "cuda", reason="TMA: a Hopper GPU")
def test_scaled_mm_takes_the_tma_kernel_only_where_it_can():
    """Large M with K-major, 16-byte-aligned operands goes through the TMA op (bit-equal to the pointer kernel's
    tile, eager and compiled); a misaligned row, a transposed operand or an odd offset keep the pointer kernel."""
    if torch.cuda.get_device_capability()[0] != 9:
        pytest.skip("the TMA kernel is taken on sm_90 only")
    gen = torch.Generator().manual_seed(11)
    m, n, k = 1000, 264, 208
    a, bt = rand_int8(m, k, gen=gen), rand_int8(n, k, gen=gen)
    sa, sb = (torch.rand(m, generator=gen) + 0.1).to(DEVICE) / 127, (torch.rand(n, generator=gen) + 0.1).to(DEVICE) / 127
    assert ops.tma_takes(a, bt.t(), torch.bfloat16)
    wide = rand_int8(m, k + 8, gen=gen)
    assert not ops.tma_takes(wide[:, :k], bt.t(), torch.bfloat16)  # rows of 216 bytes
    assert not ops.tma_takes(a.t().contiguous().t(), bt.t(), torch.bfloat16)  # a M-major
    assert not ops.tma_takes(rand_int8(m * k + 8, gen=gen)[8:].view(m, k), bt.t(), torch.bfloat16)  # 8-byte offset
    assert not ops.tma_takes(a, rand_int8(n + 1, k, gen=gen).t(), torch.bfloat16)  # output rows of 530 bytes
    tiles = ops._mm_config(m, n, k)
    pointer = ops.scaled_int8_mm_triton(a, bt.t(), sa, sb, config=tiles)
    assert torch.equal(ops.scaled_int8_mm_triton(a, bt.t(), sa, sb), pointer)
    compiled = torch.compile(lambda a, b: ops.scaled_int8_mm(a, b.t(), sa, sb, None, torch.bfloat16), fullgraph=True)
    assert torch.equal(compiled(a, bt), pointer)
    # called with memory the copy engine cannot take (an 8-byte-aligned start), the op itself falls back
    odd = torch.empty(m * k + 8, device=DEVICE, dtype=torch.int8)[8:].view(m, k)
    odd.copy_(a)
    assert torch.equal(ops._scaled_mm_tma_op(odd, bt, sa, sb, None, torch.bfloat16), pointer)


def test_scaled_mm_writes_every_element():
    gen = torch.Generator().manual_seed(1)
    a, b = rand_int8(37, 64, gen=gen), rand_int8(64, 45, gen=gen)
    sa, sb = torch.ones(37, device=DEVICE), torch.ones(45, device=DEVICE)
    out = ops.scaled_int8_mm_triton(a, b, sa, sb, out_dtype=torch.float32)
    # exact integers: any element left unwritten (torch.empty garbage) would not equal the int64 product
    assert torch.equal(out.cpu().double(), (a.cpu().long() @ b.cpu().long()).double())


def test_scaled_mm_op_reference_path_and_errors():
    gen = torch.Generator().manual_seed(2)
    a, b = rand_int8(20, 32, gen=gen), rand_int8(32, 24, gen=gen)
    sa, sb = torch.rand(20, generator=gen).to(DEVICE), torch.rand(24, generator=gen).to(DEVICE)
    out = ops.scaled_int8_mm(a, b, sa, sb, None, torch.float32)
    torch.testing.assert_close(out.cpu().double(), reference(a.cpu(), b.cpu(), sa.cpu(), sb.cpu()), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="int8"):
        ops.scaled_int8_mm_reference(a.float(), b, sa, sb)
    with pytest.raises(ValueError, match="K"):
        ops.scaled_int8_mm_reference(a, b[:16], sa, sb)
    with pytest.raises(ValueError, match="scale_a"):
        ops.scaled_int8_mm_reference(a, b, sa[:3], sb)


def test_scaled_mm_opcheck():
    gen = torch.Generator().manual_seed(3)
    a, b = rand_int8(8, 16, gen=gen), rand_int8(16, 8, gen=gen)
    torch.library.opcheck(ops.scaled_int8_mm, (a, b, torch.rand(8).to(DEVICE), torch.rand(8).to(DEVICE), None, torch.float32))


@pytest.mark.parametrize("m,n", [(1, 64), (7, 100), (33, 257)])
def test_quantize_rows_equals_the_format_definition(m, n):
    gen = torch.Generator().manual_seed(m * 1000 + n)
    x = (torch.randn(m, n, generator=gen) * torch.rand(m, 1, generator=gen) * 10).to(DEVICE)
    x[0, 0] = 0.5 * x[0].abs().max() / 127 * 2 * 63.0  # lands near a tie after scaling
    q, s = ops.quantize_rows_triton(x)
    ref = intfmt.quantize(x.cpu(), 8, granularity="token")
    torch.testing.assert_close(s.cpu(), ref.scale.reshape(-1), rtol=0, atol=0)
    assert torch.equal(q.cpu(), ref.codes)


@pytest.mark.parametrize("layout", ["one pass", "transposed view", "long rows"])
def test_quantize_rows_takes_masked_columns_as_zero(monkeypatch, layout):
    """`zero_cols` (LLM.int8()'s outlier columns): the codes and scales of x with those columns 0, bit for bit, on the
    one-pass kernel (which reads the mask) and the tiled passes (which take x masked), a NaN and the row's largest
    value among the masked ones; a mask of the wrong shape or dtype is named."""
    gen = torch.Generator().manual_seed(len(layout) + 11)
    base = torch.randn(45, 70, generator=gen) * 3
    x = base.to(DEVICE).t() if layout == "transposed view" else base.to(DEVICE)
    if layout == "long rows":
        monkeypatch.setattr(ops, "MAX_ROW", 64)
    n = x.shape[1]
    zero_cols = torch.zeros(n, dtype=torch.bool)
    zero_cols[torch.randperm(n, generator=gen)[: n // 5]] = True
    col = int(zero_cols.nonzero()[0])
    x[0, col], x[1, col] = float("nan"), 1e4  # masked: neither reaches its row's scale
    zero_cols = zero_cols.to(DEVICE)
    q, s = ops.quantize_rows_triton(x, zero_cols=zero_cols)
    ref = intfmt.quantize(x.cpu().contiguous().masked_fill(zero_cols.cpu(), 0), 8, granularity="token")
    torch.testing.assert_close(s.cpu(), ref.scale.reshape(-1), rtol=0, atol=0)
    assert torch.equal(q.cpu(), ref.codes) and torch.isfinite(s).all()
    with pytest.raises(ValueError, match="zero_cols must be a bool mask"):
        ops.quantize_rows(x, zero_cols=zero_cols[:-1])
    if layout == "one pass":  # the op with a mask: its schema, fake and dispatch
        torch.library.opcheck(ops.quantize_rows, (x, False, 0, zero_cols))


@pytest.mark.parametrize("layout", ["transposed view", "long rows", "strided rows"])
def test_quantize_rows_tiled_path_equals_the_format_definition(monkeypatch, layout):
    """Rows that are not contiguous (training quantizes gᵀ and xᵀ as views) or longer than MAX_ROW take
    two tiled passes over x in place: the same codes and scales as formats.int, bit for bit."""
    gen = torch.Generator().manual_seed(len(layout))
    base = torch.randn(45, 70, generator=gen) * torch.rand(45, 1, generator=gen) * 10
    if layout == "transposed view":
        x = base.to(DEVICE).t()  # [70, 45], stride (1, 70): rows of x are columns of base
        assert x.stride(1) != 1
    elif layout == "long rows":
        monkeypatch.setattr(ops, "MAX_ROW", 64)  # 70 > 64: the tiled path, without a huge tensor
        x = base.to(DEVICE)
    else:
        x = base.to(DEVICE)[:, ::2]  # stride (70, 2)
    q, s = ops.quantize_rows_triton(x)
    ref = intfmt.quantize(x.cpu().contiguous(), 8, granularity="token")
    assert q.is_contiguous() and q.shape == x.shape
    torch.testing.assert_close(s.cpu(), ref.scale.reshape(-1), rtol=0, atol=0)
    assert torch.equal(q.cpu(), ref.codes)


def test_quantize_rows_tiled_stochastic_is_floor_or_ceil_and_unbiased():
    gen = torch.Generator().manual_seed(21)
    rows, n = 256, 24
    col = torch.randn(n, 1, generator=gen) * 3
    x = col.expand(n, rows).contiguous().to(DEVICE).t()  # [rows, n] identical rows, as a transposed view
    q, s = ops.quantize_rows_triton(x, stochastic=True, seed=99)
    y = (x / s[:, None]).cpu().double()
    qd = q.cpu().double()
    assert ((qd == y.floor()) | (qd == y.ceil())).all()
    p = y[0] - y[0].floor()
    assert ((qd.mean(0) - y[0]).abs() <= 5 * (p * (1 - p) / rows).sqrt() + 1e-12).all()
    assert (qd != torch.round(y)).any()


def test_quantize_rows_ties_round_to_even():
    # rows whose absmax is 127, so x / scale == x exactly and the halves are exact ties
    x = torch.tensor([[0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5, 127.0]], device=DEVICE)
    q, s = ops.quantize_rows_triton(x)
    assert s.item() == 1.0
    assert q.cpu().tolist() == [[0, 2, 2, 0, -2, -2, 126, 127]]


def test_quantize_rows_op_and_zero_rows():
    x = torch.zeros(3, 16, device=DEVICE)
    q, s = ops.quantize_rows(x)
    assert torch.equal(q.cpu(), torch.zeros(3, 16, dtype=torch.int8)) and torch.isfinite(s).all()
    q2, s2 = ops.quantize_rows_triton(x)
    assert torch.equal(q2.cpu(), q.cpu())


def test_quantize_rows_stochastic_is_unbiased_and_floor_or_ceil():
    """R = 512 copies of 48 values get independent draws (Philox keyed by the element's index): per value,
    the mean code must equal x / scale within 5 standard errors, sqrt(p(1-p)/R), p = frac(x / scale).
    The copies: 16 identical rows, each the 48 values 32 times over (1536 columns, still one pass, still a
    masked block of 2048): tiling keeps a row's absmax, so every copy sees the same x / scale. R, and so
    the bound and its power, are as with 512 one-copy rows, at 16 interpreted programs, not 512 (~0.5 s, not ~12 s)."""
    gen = torch.Generator().manual_seed(11)
    rows, reps, n = 16, 32, 48
    R = rows * reps
    row = torch.randn(1, n, generator=gen) * 3
    x = row.repeat(1, reps).expand(rows, reps * n).contiguous().to(DEVICE)
    assert reps * n <= ops.MAX_ROW  # the one-pass kernel
    q, s = ops.quantize_rows_triton(x, stochastic=True, seed=1234)
    y = (x / s[:, None]).cpu().double()  # the exact value the rounding sees (div_rn)
    qd = q.cpu().double()
    assert ((qd == y.floor()) | (qd == y.ceil())).all()
    assert torch.equal(y, y[:1, :n].repeat(rows, reps))  # every copy the same x / scale
    qd, y = qd.reshape(R, n), y[0, :n]  # the R draws of each value: [rows, reps · n] -> [rows · reps, n]
    p = y - y.floor()
    se = (p * (1 - p) / R).sqrt()
    assert ((qd.mean(0) - y).abs() <= 5 * se + 1e-12).all()
    # not nearest in disguise: some codes are rounded the "far" way
    assert (qd != torch.round(y)).any()


def test_quantize_rows_stochastic_seeding_and_nearest_untouched():
    gen = torch.Generator().manual_seed(12)
    x = torch.randn(6, 40, generator=gen).to(DEVICE)
    q1, s1 = ops.quantize_rows_triton(x, stochastic=True, seed=7)
    q2, _ = ops.quantize_rows_triton(x, stochastic=True, seed=7)
    q3, _ = ops.quantize_rows_triton(x, stochastic=True, seed=8)
    assert torch.equal(q1, q2) and not torch.equal(q1, q3)
    qn, sn = ops.quantize_rows_triton(x)
    ref = intfmt.quantize(x.cpu(), 8, granularity="token")
    assert torch.equal(qn.cpu(), ref.codes) and torch.equal(s1, sn)  # scales do not depend on the rounding
    # the op, reference path included: stochastic codes are floor or ceil there too
    qo, so = ops.quantize_rows(x.cpu(), True, 3)
    y = x.cpu() / so[:, None]
    assert ((qo.float() == y.floor()) | (qo.float() == y.ceil())).all()
    torch.library.opcheck(ops.quantize_rows, (x, True, 5))
