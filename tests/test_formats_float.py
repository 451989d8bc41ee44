"""Low-bit floating point (lowbit.formats.fp): FP8 E4M3/E5M2 through torch's casts, FP4
E2M1/E1M2/E3M0 through a 16-entry table, both with absmax scales."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import zlib

import pytest
import torch

from lowbit.formats import fp

EPS32 = torch.finfo(torch.float32).eps


def make_gen(*key) -> torch.Generator:
    return torch.Generator().manual_seed(zlib.crc32(repr(key).encode()))


def finite_values(f: fp.FloatFormat) -> torch.Tensor:
    v = f.code_values()
    return torch.unique(v[~v.isnan()])  # sorted, -0 and +0 merged


def nearest_brute(y: torch.Tensor, values: torch.Tensor):
    """float64 brute force: nearest representable value for every element, and whether the
    element is (within 1e-12 relative) at a tie between two values."""
    d = (y.double().reshape(-1, 1) - values.reshape(1, -1)).abs()
    best, idx = d.min(dim=1)
    second = d.scatter(1, idx[:, None], float("inf")).min(dim=1).values
    tie = (second - best) <= 1e-12 * (1 + y.double().reshape(-1).abs())
    return values[idx].reshape(y.shape), tie.reshape(y.shape)


def log_uniform(shape, gen, decades=8):
    """Magnitudes spread over many decades (normal and subnormal ranges), random signs."""
    mag = 10 ** (-decades * torch.rand(shape, generator=gen, dtype=torch.float64))
    sign = torch.where(torch.rand(shape, generator=gen) < 0.5, -1.0, 1.0).double()
    return (mag * sign).float()


# ---------------------------------------------------------------------------------------------
# FP8


def test_fp8_code_value_tables():
    assert fp.E4M3.max == 448.0 and fp.fp8_format("e4m3").max == 448.0
    assert fp.E5M2.max == 57344.0 and fp.fp8_format("e5m2").max == 57344.0
    # smallest positive (subnormal) values: 2^-9 and 2^-16
    assert finite_values(fp.E4M3)[finite_values(fp.E4M3) > 0].min() == 2.0**-9
    assert finite_values(fp.E5M2)[finite_values(fp.E5M2) > 0].min() == 2.0**-16
    # NaN codes: E4M3fn has only 0x7F and 0xFF; E5M2 has the whole top exponent (Inf and NaN)
    assert fp.E4M3.code_values().isnan().nonzero().flatten().tolist() == [0x7F, 0xFF]
    assert fp.E5M2.code_values().isnan().sum() == 8


@pytest.mark.parametrize("f", [fp.E4M3, fp.E5M2], ids=["e4m3", "e5m2"])
def test_fp8_code_values_agree_with_torch_dtype_bit_patterns(f):
    """code_values() is lowbit's own decoding; torch reinterprets the same 256 bytes."""
    ours = f.code_values()
    theirs = torch.arange(256, dtype=torch.uint8).view(f.dtype).double()
    finite = torch.isfinite(theirs)
    assert torch.equal(ours.isnan(), ~finite)
    assert torch.equal(ours[finite], theirs[finite])


@pytest.mark.parametrize("granularity", ["channel", "tensor"])
@pytest.mark.parametrize("fmt", ["e4m3", "e5m2"])
def test_quantize_fp8_is_nearest_value_and_error_bound(fmt, granularity):
    f = fp.fp8_format(fmt)
    gen = make_gen("fp8", fmt, granularity)
    x = log_uniform((64, 256), gen, decades=7 if fmt == "e4m3" else 12) * torch.exp(torch.randn(64, 1, generator=gen))
    q, scale = fp.quantize_fp8(x, fmt, granularity)
    assert q.dtype == f.dtype and q.shape == x.shape
    assert scale.dtype == torch.float32
    assert scale.shape == (() if granularity == "tensor" else (64, 1))

    # torch's cast equals the float64 nearest-value search over code_values() on the scaled data
    y = x.float() / scale
    values = finite_values(f)
    nearest, tie = nearest_brute(y, values)
    got = q.double()
    assert tie.float().mean() < 1e-3
    assert torch.equal(got[~tie], nearest[~tie])
    # many elements fall in the subnormal range and to zero: the test covers them
    smallest_normal = 2.0 ** (1 - f.bias)
    assert ((y.abs() < smallest_normal) & (y != 0)).float().mean() > 0.05

    # dequant error <= half the local grid spacing (times the scale)
    xd = fp.dequantize_fp8(q, scale).double()
    pos = torch.bucketize(y.double().abs().clamp(max=f.max), values[values >= 0]).clamp(1, None)
    pos_values = values[values >= 0]
    gap = pos_values[pos.clamp(max=len(pos_values) - 1)] - pos_values[pos - 1]
    bound = gap / 2 * scale.double() + 2 * EPS32 * x.double().abs()
    assert ((xd - x.double()).abs() <= bound).all()


@pytest.mark.parametrize("fmt", ["e4m3", "e5m2"])
def test_fp8_per_channel_absmax_lands_on_max(fmt):
    f = fp.fp8_format(fmt)
    gen = make_gen("absmax", fmt)
    x = torch.randn(48, 128, generator=gen) * torch.logspace(-4, 3, 48)[:, None]
    q, scale = fp.quantize_fp8(x, fmt, "channel")
    arg = x.abs().argmax(dim=1, keepdim=True)
    at_max = q.float().gather(1, arg).squeeze(1)
    assert torch.equal(at_max.abs(), torch.full((48,), f.max))
    assert torch.equal(at_max.sign(), x.gather(1, arg).squeeze(1).sign())
    assert (q.float().abs().amax(1) == f.max).all()
    torch.testing.assert_close(scale.squeeze(1).double(), x.abs().amax(1).double() / f.max, rtol=EPS32, atol=0)
    # per tensor: only the global absmax is on the max
    qt, st = fp.quantize_fp8(x, fmt, "tensor")
    assert qt.float().abs().max() == f.max
    assert (qt.float().abs().amax(1) < f.max).sum() > 40


def test_fp8_errors():
    with pytest.raises(ValueError, match="fmt"):
        fp.quantize_fp8(torch.randn(4, 8), "e3m4")
    with pytest.raises(ValueError, match="granularity"):
        fp.quantize_fp8(torch.randn(4, 8), "e4m3", "group")
    x = torch.randn(4, 8)
    x[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        fp.quantize_fp8(x, "e4m3")


# ---------------------------------------------------------------------------------------------
# FP4

FP4_POSITIVE = {
    "e2m1": [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0],
    "e1m2": [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5],
    "e3m0": [0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0],
}


@pytest.mark.parametrize("fmt", sorted(FP4_POSITIVE))
def test_fp4_code_tables_literal(fmt):
    f = fp.fp4_format(fmt)
    assert f.bits == 4
    v = f.code_values()
    assert v.tolist()[:8] == FP4_POSITIVE[fmt]  # codes 0..7: sign bit clear, in code order
    assert (-v[8:]).tolist() == FP4_POSITIVE[fmt]  # codes 8..15: the negatives
    assert f.max == FP4_POSITIVE[fmt][-1]
    assert not v.isnan().any()


@pytest.mark.parametrize("block_size", [16, 32, 64])
@pytest.mark.parametrize("fmt", sorted(FP4_POSITIVE))
def test_quantize_fp4_picks_nearest_value(fmt, block_size):
    f = fp.fp4_format(fmt)
    gen = make_gen("fp4", fmt, block_size)
    x = torch.randn(32, 192, generator=gen) * torch.exp(torch.randn(32, 1, generator=gen))
    codes, scale = fp.quantize_fp4(x, fmt, block_size)
    assert codes.dtype == torch.uint8 and codes.shape == x.shape and int(codes.max()) < 16
    assert scale.shape == (32, 192 // block_size)
    blocks = x.double().reshape(32, -1, block_size)
    torch.testing.assert_close(scale.double(), blocks.abs().amax(-1) / f.max, rtol=EPS32, atol=0)

    y = (x.reshape(32, -1, block_size) / scale.unsqueeze(-1)).reshape(x.shape)
    table = f.code_values()
    nearest, tie = nearest_brute(y, torch.unique(table))
    got = table[codes.long()]
    assert tie.float().mean() < 1e-3
    assert torch.equal(got[~tie], nearest[~tie])
    # each block's absmax element is on ±max
    arg = x.reshape(32, -1, block_size).abs().argmax(-1, keepdim=True)
    assert (got.reshape(32, -1, block_size).gather(-1, arg).abs() == f.max).all()

    deq = fp.dequantize_fp4(codes, scale, fmt)
    expected = (got.reshape(32, -1, block_size) * scale.double().unsqueeze(-1)).reshape(x.shape)
    torch.testing.assert_close(deq.double(), expected, rtol=EPS32, atol=0)


def test_fp4_errors():
    x = torch.randn(4, 64)
    with pytest.raises(ValueError, match="fmt"):
        fp.quantize_fp4(x, "e2m2")
    with pytest.raises(ValueError, match="fmt"):
        fp.dequantize_fp4(torch.zeros(4, 64, dtype=torch.uint8), torch.ones(4, 2), "nf4")
    with pytest.raises(ValueError, match="block_size"):
        fp.quantize_fp4(x, "e2m1", 48)
    with pytest.raises(ValueError, match="block_size"):
        fp.quantize_fp4(x, "e2m1", 0)
    x[1, 1] = float("inf")
    with pytest.raises(ValueError, match="NaN or Inf"):
        fp.quantize_fp4(x, "e2m1", 32)
