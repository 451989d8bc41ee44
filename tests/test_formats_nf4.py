"""NF4 (lowbit.formats.nf4): the table rebuilt from the QLoRA construction, and bit-for-bit
agreement with bitsandbytes where it is installed."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import zlib

import pytest
import torch

from lowbit.formats import nf4
from lowbit.formats.packing import pack, unpack


def make_gen(*key) -> torch.Generator:
    return torch.Generator().manual_seed(zlib.crc32(repr(key).encode()))


def qlora_nf4_table() -> torch.Tensor:
    """QLoRA: 8 positive quantiles over [offset, 0.5), 7 negative, plus an exact 0; normalised."""
    offset = 0.9677083
    pos = torch.special.ndtri(torch.linspace(offset, 0.5, 9, dtype=torch.float64)[:-1])
    neg = -torch.special.ndtri(torch.linspace(offset, 0.5, 8, dtype=torch.float64)[:-1])
    v = torch.cat([pos, torch.zeros(1, dtype=torch.float64), neg])
    v = v / v.abs().max()
    return v.sort().values


def test_nf4_table_rebuilt_from_normal_quantiles():
    ref = qlora_nf4_table()
    assert nf4.NF4_VALUES.dtype == torch.float32 and nf4.NF4_VALUES.shape == (16,)
    torch.testing.assert_close(nf4.NF4_VALUES.double(), ref, rtol=0, atol=1e-6)
    assert nf4.NF4_VALUES[7] == 0.0 and nf4.NF4_VALUES[0] == -1.0 and nf4.NF4_VALUES[15] == 1.0


def test_dynamic_map_structure():
    d = nf4.dynamic_map()
    assert d.shape == (256,) and d.dtype == torch.float32
    assert torch.equal(d, d.sort().values)
    assert d.max() == 1.0 and (d == 0).sum() == 1
    assert torch.unique(d).numel() == 256


def test_dynamic_map_equals_bitsandbytes():
    bf = pytest.importorskip("bitsandbytes.functional")
    theirs = bf.create_dynamic_map(signed=True)
    assert torch.equal(nf4.dynamic_map(), theirs.float())


def _bnb_codes(packed: torch.Tensor) -> torch.Tensor:
    """bitsandbytes packs two 4-bit codes per byte, the first in the high nibble."""
    p = packed.reshape(-1)
    return torch.stack([p >> 4, p & 0xF], dim=1).reshape(-1)


@pytest.mark.parametrize("block_size", [64, 128, 256])
def test_dequant_equals_bitsandbytes_exactly(block_size):
    """Rows of 512 elements: bitsandbytes 0.50's CPU dequantize_4bit kernel indexes the absmax as
    if no block straddled two rows (with 320 columns and block 128 its output is wrong by up to
    5x absmax, while its own pure-PyTorch reference agrees with lowbit), so the weights here have
    a row length that every block size divides, as real layers do."""
    bf = pytest.importorskip("bitsandbytes.functional")
    gen = make_gen("bnb", block_size)
    x = torch.randn(192, 512, generator=gen) * 0.02 * torch.exp(torch.randn(192, 1, generator=gen))
    x[5, 7] = 0.0  # exact zeros and a whole zero block
    x[9, :block_size] = 0.0
    q = nf4.quantize(x, block_size)
    packed, state = bf.quantize_4bit(x, blocksize=block_size, quant_type="nf4", compress_statistics=False)
    theirs = bf.dequantize_4bit(packed, state)
    assert torch.equal(q.codes.reshape(-1), _bnb_codes(packed).reshape(-1))
    assert torch.equal(q.absmax, state.absmax)
    assert torch.equal(q.dequantize(), theirs)


@pytest.mark.parametrize("block_size", [64, 128, 256])
def test_double_quant_against_bitsandbytes(block_size):
    """Same 4-bit codes, offset and second-level scales. bitsandbytes' CPU blockwise quantizer
    searches the 256-entry map and occasionally returns a neighbour of the nearest code; lowbit
    rounds to nearest, so its absmax reconstruction error is never larger (up to float32 rounding
    of the reconstruction itself: ≤ 2 ulps of the absmax)."""
    bf = pytest.importorskip("bitsandbytes.functional")
    gen = make_gen("dq", block_size)
    # 61440 elements: 960 / 480 / 240 blocks -> the second level has a partial 256-block
    x = torch.randn(192, 320, generator=gen) * 0.02 * torch.exp(torch.randn(192, 1, generator=gen))
    q = nf4.quantize(x, block_size, double_quant=True)
    assert q.absmax is None and q.absmax_codes.dtype == torch.uint8
    packed, state = bf.quantize_4bit(x, blocksize=block_size, quant_type="nf4", compress_statistics=True)
    assert torch.equal(q.codes.reshape(-1), _bnb_codes(packed).reshape(-1))
    assert torch.equal(q.absmax_offset, state.offset)
    assert torch.equal(q.absmax_scale, state.state2.absmax)
    assert state.state2.blocksize == nf4.ABSMAX_BLOCK

    true = x.reshape(-1, block_size).abs().amax(1)
    ours = q.block_absmax()
    theirs = bf.dequantize_blockwise(state.absmax, state.state2) + state.offset
    err_ours, err_theirs = (ours - true).abs(), (theirs - true).abs()
    slack = 2 * torch.finfo(torch.float32).eps * true
    assert (err_ours <= err_theirs + slack).all()
    # most codes agree; where they differ, lowbit's is the nearer one
    differ = q.absmax_codes != state.absmax
    assert differ.float().mean() < 0.05
    if differ.any():
        assert (err_ours[differ] < err_theirs[differ]).all()


@pytest.mark.parametrize("block_size", [32, 64, 256])
def test_nf4_nearest_and_error_bound(block_size):
    """Each element is rounded to the nearest NF4 value of x/absmax, so |x − x̂| ≤ (local gap / 2)
    · absmax ≤ (max gap / 2) · absmax, and the block absmax itself is exact."""
    gen = make_gen("bound", block_size)
    x = torch.randn(96, 256, generator=gen) * torch.exp(torch.randn(96, 1, generator=gen))
    q = nf4.quantize(x, block_size)
    assert q.codes.dtype == torch.uint8 and q.codes.shape == x.shape and int(q.codes.max()) < 16
    blocks = x.double().reshape(-1, block_size)
    absmax = blocks.abs().amax(1, keepdim=True)
    assert torch.equal(q.absmax.double(), absmax.squeeze(1))
    y = blocks / absmax
    table = nf4.NF4_VALUES.double()
    d = (y[..., None] - table).abs()
    best = d.min(-1).values
    got = table[q.codes.reshape(-1, block_size).long()]
    # nearest: lowbit's pick is as close as the brute-force best (float32 midpoints: 1e-6 slack)
    assert ((got - y).abs() <= best + 1e-6).all()
    xd = q.dequantize().double().reshape(-1, block_size)
    gaps = table[1:] - table[:-1]
    local = torch.bucketize(y.clamp(-1, 1), table).clamp(1, 15)
    local_gap = gaps[local - 1]
    eps = torch.finfo(torch.float32).eps
    assert ((xd - blocks).abs() <= (local_gap / 2 + 1e-6) * absmax + eps * blocks.abs()).all()
    assert ((xd - blocks).abs() <= (gaps.max() / 2 + 1e-6) * absmax).all()
    # the block absmax element is reconstructed exactly (it maps to ±1)
    arg = blocks.abs().argmax(1, keepdim=True)
    assert torch.equal(xd.gather(1, arg), blocks.gather(1, arg))


def test_nf4_storage_round_trip_through_packing():
    x = torch.randn(64, 96, generator=make_gen("pack"))
    q = nf4.quantize(x, 64)
    packed = pack(q.codes.reshape(-1), 4)
    assert packed.numel() == x.numel() // 2
    assert torch.equal(unpack(packed, 4, x.numel()).reshape(x.shape), q.codes)


def test_nf4_errors():
    with pytest.raises(ValueError, match="block_size"):
        nf4.quantize(torch.randn(10, 10), 64)
    with pytest.raises(ValueError, match="block_size"):
        nf4.quantize(torch.randn(8, 8), 0)
    x = torch.randn(8, 8)
    x[2, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        nf4.quantize(x, 64)
