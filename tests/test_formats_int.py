"""Integer affine quantization (lowbit.formats.int) against a float64 reference written
directly from the format's equations:

    x ≈ (q − z)·s
    symmetric (absmax):    s = max|x| / (2^(b−1) − 1),                      z = 0,
                           q = clamp(round(x/s), −(2^(b−1) − 1), 2^(b−1) − 1)
    asymmetric (zero-pt):  lo = min(min x, 0), hi = max(max x, 0),
                           s = (hi − lo) / (2^b − 1),  z = round(−lo/s),
                           q = clamp(round(x/s + z), 0, 2^b − 1)
"""

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import math
import zlib

import pytest
import torch

from lowbit.formats import int as fi
from lowbit.formats.error import sqnr

EPS32 = torch.finfo(torch.float32).eps  # 2^-23
BITS = list(range(2, 9))

# granularity, shape, group_size. "token" is exercised on a 3-D activation [B, T, features].
GRANULARITY_CASES = [
    ("tensor", (96, 160), None),
    ("channel", (96, 160), None),
    ("token", (3, 40, 96), None),
    ("group", (64, 192), 32),
    ("group", (48, 256), 128),
]
GRAN_IDS = [f"{g}{'' if gs is None else gs}" for g, _, gs in GRANULARITY_CASES]


def make_gen(*key) -> torch.Generator:
    """A fresh generator per test case; the seed varies with the parametrization (deterministic
    across runs: crc32, not the salted built-in hash)."""
    return torch.Generator().manual_seed(zlib.crc32(repr(key).encode()))


def _groups64(x: torch.Tensor, granularity: str, group_size) -> torch.Tensor:
    """x in float64 with one quantization group per row (written independently of lowbit)."""
    x = x.double()
    if granularity == "tensor":
        return x.reshape(1, -1)
    if granularity in ("channel", "token"):
        return x.reshape(-1, x.shape[-1])
    return x.reshape(*x.shape[:-1], x.shape[-1] // group_size, group_size).reshape(-1, group_size)


def reference(x: torch.Tensor, bits: int, symmetric: bool, granularity: str, group_size):
    """float64 reference: (codes, per-group scale, per-group zero, codes as x's shape, per-element scale)."""
    rows = _groups64(x, granularity, group_size)
    if symmetric:
        qmax = 2 ** (bits - 1) - 1
        s = rows.abs().amax(dim=1) / qmax
        z = torch.zeros_like(s)
        q = torch.round(rows / s[:, None]).clamp(-qmax, qmax)
    else:
        qmax = 2**bits - 1
        lo = rows.amin(dim=1).clamp(max=0.0)
        hi = rows.amax(dim=1).clamp(min=0.0)
        s = (hi - lo) / qmax
        z = torch.round(-lo / s)
        q = torch.round(rows / s[:, None] + z[:, None]).clamp(0, qmax)
    s_elem = s[:, None].expand_as(rows).reshape(x.shape)
    return q.reshape(x.shape), s, z, s_elem


def random_input(shape, gen):
    # Gaussian with rows of different scale and a non-zero mean, so asymmetric ranges are lopsided.
    x = torch.randn(shape, generator=gen)
    row_scale = torch.exp(torch.randn(*shape[:-1], 1, generator=gen))
    return (x + 0.3) * row_scale


@pytest.mark.parametrize("granularity,shape,group_size", GRANULARITY_CASES, ids=GRAN_IDS)
@pytest.mark.parametrize("symmetric", [True, False], ids=["sym", "asym"])
@pytest.mark.parametrize("bits", BITS)
def test_codes_scales_and_error_bound_match_float64_reference(bits, symmetric, granularity, shape, group_size):
    gen = make_gen("ref", bits, symmetric, granularity, group_size)
    x = random_input(shape, gen)
    q = fi.quantize(x, bits, symmetric=symmetric, granularity=granularity, group_size=group_size)
    q_ref, s_ref, z_ref, s_elem = reference(x, bits, symmetric, granularity, group_size)

    # storage contract
    assert q.codes.shape == x.shape
    assert q.codes.dtype == (torch.int8 if symmetric else torch.uint8)
    assert q.bits == bits and q.granularity == granularity

    # codes within range
    if symmetric:
        qmin, qmax = -(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1
    else:
        qmin, qmax = 0, 2**bits - 1
    assert int(q.codes.min()) >= qmin and int(q.codes.max()) <= qmax
    assert fi.code_range(bits, symmetric) == (qmin, qmax)

    # scales: lowbit computes s in float32 (one rounded division) -> relative error <= eps32.
    s_low = q.scale.double().reshape(-1)
    assert s_low.numel() == s_ref.numel()
    torch.testing.assert_close(s_low, s_ref, rtol=2 * EPS32, atol=0)
    if not symmetric:
        # z = round(-lo/s): identical unless -lo/s sits within float32 rounding of a .5 tie.
        assert q.zero.dtype == torch.uint8
        assert (q.zero.double().reshape(-1) - z_ref).abs().max() <= 1
        assert (q.zero.double().reshape(-1) != z_ref).float().mean() <= 0.01
    else:
        assert q.zero is None

    # codes equal the float64 reference except at rounding ties. lowbit divides in float32, so
    # x/s carries a relative error of ~2 eps32; a code can differ (by exactly 1) only where x/s
    # (+ z) lies within ~2^bits·2·eps32 of a half-integer. For continuous random data that is a
    # probability of order 2^bits·4·eps32 ≈ 1e-4 per element (and a changed zero shifts a whole
    # group by 1). Allow at most 0.5 % of codes to differ, each by at most 1.
    diff = (q.codes.double() - q_ref).abs()
    assert diff.max() <= 1
    assert diff.gt(0).double().mean() <= 5e-3
    # where they differ, the reference value was (nearly) a tie: |frac - 0.5| tiny
    if diff.gt(0).any() and symmetric:
        t = (x.double() / s_elem)[diff > 0]
        assert ((t - t.floor()) - 0.5).abs().max() < 1e-4

    # elementwise error bound of round-to-nearest: |x - x̂| <= s/2 per element, plus float32
    # effects: the code-space value x/s + z is computed with error <= ~2^bits·2·eps32 code units
    # and the dequantization (q − z)·s rounds once (<= eps32·|x̂|).
    x_hat = q.dequantize().double()
    err = (x.double() - x_hat).abs()
    bound = s_elem * (0.5 + 2**bits * 4 * EPS32) + 2 * EPS32 * x.double().abs()
    assert (err <= bound).all(), float((err - bound).max())

    # dequantize() is (q - z)·s exactly as the format says (float32 arithmetic)
    z_elem = 0.0 if symmetric else q.zero.float()
    if granularity == "group":
        z_elem = z_elem if symmetric else z_elem.repeat_interleave(group_size, dim=-1)
        s32 = q.scale.repeat_interleave(group_size, dim=-1)
    else:
        s32 = q.scale
    assert torch.equal(q.dequantize(), (q.codes.float() - z_elem) * s32)


@pytest.mark.parametrize("symmetric", [True, False], ids=["sym", "asym"])
def test_scale_shapes(symmetric):
    x = torch.randn(2, 8, 64, generator=make_gen("shape", symmetric))
    assert fi.quantize(x, 4, symmetric=symmetric, granularity="tensor").scale.shape == ()
    assert fi.quantize(x, 4, symmetric=symmetric, granularity="channel").scale.shape == (2, 8, 1)
    assert fi.quantize(x, 4, symmetric=symmetric, granularity="token").scale.shape == (2, 8, 1)
    assert fi.quantize(x, 4, symmetric=symmetric, granularity="group", group_size=16).scale.shape == (2, 8, 4)


def test_symmetric_grid_is_odd():
    """-x quantizes to -q (the code -2^(b-1) is unused)."""
    x = torch.randn(64, 128, generator=make_gen("odd"))
    for bits in BITS:
        a = fi.quantize(x, bits, granularity="channel")
        b = fi.quantize(-x, bits, granularity="channel")
        assert torch.equal(a.codes, -b.codes)
        assert torch.equal(a.scale, b.scale)


def test_asymmetric_keeps_zero_exact_and_one_sided_rows():
    """min clamped <= 0 and max >= 0: zero is exactly representable, even for all-positive rows."""
    gen = make_gen("zero")
    x = torch.rand(32, 128, generator=gen) + 0.5  # strictly positive rows
    x[:, ::7] = 0.0
    for bits in BITS:
        q = fi.quantize(x, bits, symmetric=False, granularity="channel")
        assert (q.zero == 0).all()  # lo = 0 -> z = 0
        assert (q.dequantize()[:, ::7] == 0).all()
        # all-positive rows: s = max/(2^b - 1)
        torch.testing.assert_close(q.scale.reshape(-1).double(), x.amax(1).double() / (2**bits - 1), rtol=2 * EPS32, atol=0)


def test_all_zero_input_gives_zero_and_no_nan():
    for sym in (True, False):
        q = fi.quantize(torch.zeros(4, 32), 4, symmetric=sym, granularity="channel")
        assert torch.equal(q.dequantize(), torch.zeros(4, 32))


# ---------------------------------------------------------------------------------------------
# SQNR


def test_sqnr_per_channel_gaussian_matches_uniform_noise_model():
    """Uniform-noise model of fine rounding: noise power per element = s²/12, with the row's
    step s = max|x_row| / (2^(b−1) − 1). Predicted SQNR = 10·log10(σ̂² / mean_rows(s²/12)).
    This is the theoretical 6.02·b + 4.77 − 20·log10(max/σ) up to the symmetric grid's
    2^b/(2^b − 2) (0.07 dB at 8 bits; 0.58 dB at 4 bits).

    Margin: the sample mean of e² over N = 64·512 elements has relative std 0.89/sqrt(N) = 0.5 %
    (0.02 dB); the row's absmax element itself has zero error (1/512 of a row: +0.01 dB); the
    uniform model is accurate to well under 0.3 dB for steps ≤ 0.5σ (4 bits: 3.5σ/7). So ±0.5 dB.
    """
    x = torch.randn(64, 512, generator=make_gen("sqnr"), dtype=torch.float64).float()
    measured = {}
    for bits in range(4, 9):
        q = fi.quantize(x, bits, granularity="channel")
        s = q.scale.double().reshape(-1)
        predicted = 10 * math.log10(x.double().pow(2).mean().item() / (s.pow(2).mean().item() / 12))
        measured[bits] = sqnr(x, q.dequantize())
        assert abs(measured[bits] - predicted) <= 0.5, (bits, measured[bits], predicted)
        # the textbook formula with the *RMS* row absmax, as given (2^b levels over ±max)
        rms_max = x.double().abs().amax(1).pow(2).mean().sqrt().item()
        textbook = 6.02 * bits + 4.77 - 20 * math.log10(rms_max / x.double().std().item())
        grid = 20 * math.log10(2**bits / (2**bits - 2))  # lowbit's symmetric grid drops one code
        assert measured[bits] >= textbook - grid - 0.5, (bits, measured[bits], textbook)
    # ~6 dB per bit: the step halves (exactly: qmax goes 7 -> 15 -> 31 -> 63 -> 127)
    for bits in range(4, 8):
        step = measured[bits + 1] - measured[bits]
        assert abs(step - 6.02) <= 1.5, (bits, step)
        expected = 20 * math.log10((2**bits - 1) / (2 ** (bits - 1) - 1))
        assert abs(step - expected) <= 0.5, (bits, step, expected)
    assert measured[8] >= 40.0


def test_per_channel_beats_per_tensor_on_rows_of_different_scales():
    """Rows scaled from 1e-3 to 1. Per tensor, the step is max_all/127 ≈ 3.5/127 = 0.028 while
    every element of the smallest row is < 0.005 < step/2: that row quantizes to all zeros
    (SQNR exactly 0 dB). Per channel each row gets its own step and keeps ~40 dB."""
    gen = make_gen("rows")
    scales = torch.logspace(-3, 0, 32)
    x = torch.randn(32, 256, generator=gen) * scales[:, None]
    x[0] = x[0] / x[0].abs().amax() * 1e-3  # the smallest row's absmax is exactly 1e-3
    assert x.abs().amax() > 2.0  # max of 256 N(0,1) draws; P(< 2) = 0.954^256 ≈ 6e-6
    per_tensor = fi.quantize(x, 8, granularity="tensor").dequantize()
    per_channel = fi.quantize(x, 8, granularity="channel").dequantize()
    assert (per_tensor[0] == 0).all()
    assert sqnr(x[0], per_tensor[0]) == pytest.approx(0.0, abs=1e-9)
    assert sqnr(x[0], per_channel[0]) > 35.0
    # overall: per-channel is far better (the mean-square error is dominated by the small rows)
    assert sqnr(x, per_channel) > sqnr(x, per_tensor) + 6.0
    # rows at <= 1/10 of the top scale: per-tensor step is >= 10x the row's own step, i.e.
    # >= 20 dB more noise (or the row collapses to zero); require 10 dB.
    for i in range(32):
        if scales[i] <= 0.1:
            assert sqnr(x[i], per_channel[i]) >= sqnr(x[i], per_tensor[i]) + 10.0, i


# ---------------------------------------------------------------------------------------------
# stochastic rounding


@pytest.mark.parametrize("symmetric,granularity", [(True, "channel"), (True, "tensor"), (False, "channel"), (False, "group")])
def test_stochastic_rounding_is_unbiased_and_within_one_step(symmetric, granularity):
    """floor(x/s + U) is q_lo with prob 1−f and q_lo+1 with prob f (f = frac(x/s)): its mean is
    x/s and its variance f(1−f) ≤ 1/4 code units². Over N draws the mean's std is ≤ s/(2√N); a
    5-sigma bound per element (P ≈ 6e-7 each, ~1e-4 for all elements) is 5·s/(2√N). Nearest
    rounding would be off by up to s/2 — 18× that bound at N = 2000 — so this test tells them apart.

    Asymmetric grids top out at (qmax − z)·s, which is below hi when z was rounded up; elements
    above the top grid point cannot be represented unbiasedly (they clamp), so the mean check
    covers elements within the grid's range."""
    n_draws = 2000
    gen = make_gen("sr", symmetric, granularity)
    group_size = 32 if granularity == "group" else None
    x = torch.randn(4, 64, generator=gen) + (0.0 if symmetric else 0.7)
    base = fi.quantize(x, 4, symmetric=symmetric, granularity=granularity, group_size=group_size)
    scale = fi.expand_to(base.scale, granularity, group_size).expand_as(x).double()
    draws = torch.empty(n_draws, *x.shape, dtype=torch.float64)
    for i in range(n_draws):
        q = fi.quantize(x, 4, symmetric=symmetric, granularity=granularity, group_size=group_size, rounding="stochastic", generator=gen)
        assert torch.equal(q.scale, base.scale)
        draws[i] = q.dequantize().double()
    err = (draws - x.double()).abs()
    assert (err < scale * (1 + 1e-5)).all()  # each draw is one of the two neighbours
    # values that are not on the grid actually get both neighbours
    assert (draws.amax(0) > draws.amin(0)).float().mean() > 0.9

    mean = draws.mean(0)
    if symmetric:
        inside = torch.ones_like(x, dtype=torch.bool)
    else:
        z = fi.expand_to(base.zero.double(), granularity, group_size)
        lo_grid, hi_grid = (0 - z) * scale, (15 - z) * scale
        inside = (x.double() >= lo_grid) & (x.double() <= hi_grid)
        assert inside.float().mean() > 0.9
    bound = 5 * scale / (2 * math.sqrt(n_draws)) + 1e-6 * x.double().abs()
    assert ((mean - x.double()).abs() <= bound)[inside].all()
    # and nearest rounding is measurably biased on the same data (the test has teeth)
    nearest_err = (base.dequantize().double() - x.double()).abs()
    assert (nearest_err > bound)[inside].float().mean() > 0.5


def test_stochastic_rounding_generator_reproducible():
    x = torch.randn(16, 64, generator=make_gen("rep"))
    a = fi.quantize(x, 4, rounding="stochastic", generator=torch.Generator().manual_seed(7))
    b = fi.quantize(x, 4, rounding="stochastic", generator=torch.Generator().manual_seed(7))
    c = fi.quantize(x, 4, rounding="stochastic", generator=torch.Generator().manual_seed(8))
    assert torch.equal(a.codes, b.codes)
    assert not torch.equal(a.codes, c.codes)


# ---------------------------------------------------------------------------------------------
# errors


@pytest.mark.parametrize("bits", [1, 9, 0, 16, 4.0, True])
def test_bad_bits_raise_naming_bits(bits):
    with pytest.raises(ValueError, match="bits"):
        fi.quantize(torch.randn(4, 8), bits)


def test_group_size_not_dividing_raises():
    with pytest.raises(ValueError, match="group_size"):
        fi.quantize(torch.randn(4, 96), 4, granularity="group", group_size=64)
    with pytest.raises(ValueError, match="group_size"):
        fi.quantize(torch.randn(4, 96), 4, granularity="group", group_size=None)
    with pytest.raises(ValueError, match="group_size"):
        fi.quantize(torch.randn(4, 96), 4, granularity="group", group_size=0)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("symmetric", [True, False])
def test_non_finite_input_raises(bad, symmetric):
    x = torch.randn(8, 32)
    x[3, 5] = bad
    with pytest.raises(ValueError, match="NaN or Inf"):
        fi.quantize(x, 8, symmetric=symmetric)


def test_bad_granularity_and_rounding_raise():
    with pytest.raises(ValueError, match="granularity"):
        fi.quantize(torch.randn(4, 8), 8, granularity="row")
    with pytest.raises(ValueError, match="rounding"):
        fi.quantize(torch.randn(4, 8), 8, rounding="up")


# ---------------------------------------------------------------------------------------------
# int8 matmuls


def test_vectorwise_int8_matmul_error_bound_against_float64():
    """Per element, with x̂ = x + e_x (|e_x| ≤ s_x/2 = ax/254) and ŵ = w + e_w (|e_w| ≤ aw/254):
        |x̂·ŵ − x·w| ≤ Σ_k |x_k||e_w| + |w_k||e_x| + |e_x||e_w|
                    ≤ (‖x‖₁·aw + ‖w‖₁·ax)/254 + K·ax·aw/254²
    (ax, aw = row absmax). float32 effects: the int32 accumulation is exact, acc → float32 is
    exact (|acc| ≤ 127²·K < 2^24), and the two scale products round twice: +3·eps32·|out|;
    float32 division may move a code at a tie by one step: covered by +1e-5·K·ax·aw.

    Normwise, for Gaussian data the errors are nearly independent: relative Frobenius error
    ≈ sqrt((s_w/σ_w)² + (s_x/σ_x)²)/√12 with s/σ = (max/σ)/127 ≤ 4/127 → ≤ 1.63/127 < 2/127."""
    gen = make_gen("vw")
    x = torch.randn(2, 33, 256, generator=gen)
    w = torch.randn(96, 256, generator=gen) * 0.05
    out = fi.vectorwise_int8_matmul(x, w)
    assert out.shape == (2, 33, 96) and out.dtype == torch.float32
    x2, w64 = x.reshape(-1, 256).double(), w.double()
    ref = x2 @ w64.t()
    ax, aw = x2.abs().amax(1, keepdim=True), w64.abs().amax(1, keepdim=True).t()
    K = 256
    bound = (x2.abs().sum(1, keepdim=True) * aw + ax * w64.abs().sum(1, keepdim=True).t()) / 254 + K * ax * aw / 254**2
    bound = bound + 3 * EPS32 * ref.abs() + 1e-5 * K * ax * aw
    err = (out.reshape(-1, 96).double() - ref).abs()
    assert (err <= bound).all()
    rel = (err.norm() / ref.norm()).item()
    assert rel <= 2 / 127
    assert rel > 0  # it is a quantized product, not the float one


def test_vectorwise_int8_matmul_exact_against_dequantized_operands():
    """The product is exactly (codes_x @ codes_wᵀ) scaled by the outer product of the scales."""
    gen = make_gen("vw-exact")
    x = torch.randn(40, 128, generator=gen) * 3
    w = torch.randn(72, 128, generator=gen)
    out = fi.vectorwise_int8_matmul(x, w)
    xq = fi.quantize(x, 8, granularity="token")
    wq = fi.quantize(w, 8, granularity="channel")
    acc = xq.codes.long() @ wq.codes.long().t()  # exact integers
    ref64 = acc.double() * xq.scale.double() * wq.scale.double().reshape(1, -1)
    # float32 epilogue: acc (exact in float32) times two float32 scales -> two roundings
    torch.testing.assert_close(out.double(), ref64, rtol=3 * EPS32, atol=0)
    # and it equals the dequantized operands' product up to float64 summation order
    deq = xq.dequantize().double() @ wq.dequantize().double().t()
    torch.testing.assert_close(out.double(), deq, rtol=1e-6, atol=1e-6 * deq.abs().max().item())


@pytest.mark.parametrize("m", [1, 3, 17])
@pytest.mark.parametrize("k", [5, 77])
@pytest.mark.parametrize("n", [1, 6, 33])
def test_int8_matmul_exact(m, k, n):
    gen = make_gen("imm", m, k, n)
    a = torch.randint(-128, 128, (m, k), generator=gen, dtype=torch.int8)
    b = torch.randint(-128, 128, (n, k), generator=gen, dtype=torch.int8)
    a[0, :] = -128  # extreme values: worst-case accumulation
    b[0, :] = -128
    out = fi.int8_matmul(a, b)
    assert out.dtype == torch.int32 and out.shape == (m, n)
    assert torch.equal(out.long(), a.long() @ b.long().t())
    assert int(out[0, 0]) == 128 * 128 * k
