"""Bit packing of 2-8-bit codes (lowbit.formats.packing): eight b-bit codes fill b bytes,
little-endian bit order, last dim padded to a multiple of 8."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import zlib

import pytest
import torch

from lowbit.formats.packing import pack, packed_length, unpack

LENGTHS = [1, 7, 8, 9, 130]


def make_gen(*key) -> torch.Generator:
    return torch.Generator().manual_seed(zlib.crc32(repr(key).encode()))


def reference_pack_row(codes: list[int], bits: int) -> list[int]:
    """Independent packer: one Python integer holds the whole row, code i at bit i·bits."""
    n = len(codes)
    word = 0
    for i, c in enumerate(codes):
        word |= c << (i * bits)
    nbytes = (n + 7) // 8 * bits
    return [(word >> (8 * j)) & 0xFF for j in range(nbytes)]


@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("bits", range(2, 9))
def test_round_trip_and_size(bits, n):
    gen = make_gen(bits, n)
    codes = torch.randint(0, 2**bits, (3, 5, n), generator=gen, dtype=torch.uint8)
    codes[0, 0, :] = 2**bits - 1  # all-ones row: every bit set
    codes[0, 1, :] = 0
    packed = pack(codes, bits)
    assert packed.dtype == torch.uint8
    assert packed.shape == (3, 5, (n + 7) // 8 * bits)
    assert packed_length(n, bits) == -(-n // 8) * bits
    out = unpack(packed, bits, n)
    assert out.dtype == torch.uint8 and out.shape == codes.shape
    assert torch.equal(out, codes)


@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("bits", range(2, 9))
def test_layout_matches_little_endian_reference(bits, n):
    gen = make_gen("layout", bits, n)
    codes = torch.randint(0, 2**bits, (4, n), generator=gen, dtype=torch.uint8)
    packed = pack(codes, bits)
    for r in range(4):
        assert packed[r].tolist() == reference_pack_row(codes[r].tolist(), bits)


def test_one_dimensional():
    codes = torch.tensor([1, 2, 3, 0, 1, 2, 3, 0, 3], dtype=torch.uint8)
    packed = pack(codes, 2)
    assert packed.shape == (4,)
    assert packed.tolist() == reference_pack_row(codes.tolist(), 2)
    assert torch.equal(unpack(packed, 2, 9), codes)


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_empty_leading_dim(bits):
    """Zero rows pack to zero rows (and back)."""
    empty = torch.zeros(0, 16, dtype=torch.uint8)
    packed = pack(empty, bits)
    assert packed.shape == (0, 2 * bits)
    assert unpack(packed, bits, 16).shape == (0, 16)


@pytest.mark.parametrize("bits", range(2, 8))
def test_codes_out_of_range_raise(bits):
    codes = torch.zeros(2, 9, dtype=torch.uint8)
    codes[1, 4] = 2**bits
    with pytest.raises(ValueError, match="bits"):
        pack(codes, bits)
    codes[1, 4] = 255
    with pytest.raises(ValueError):
        pack(codes, bits)


@pytest.mark.parametrize("dtype", [torch.int8, torch.int16, torch.int32, torch.int64, torch.float32])
@pytest.mark.parametrize("bits", [4, 8])
def test_wrong_dtype_raises(dtype, bits):
    with pytest.raises(ValueError, match="uint8"):
        pack(torch.zeros(2, 8, dtype=dtype), bits)


@pytest.mark.parametrize("bits", [1, 9])
def test_bad_bits_raise(bits):
    with pytest.raises(ValueError, match="bits"):
        pack(torch.zeros(8, dtype=torch.uint8), bits)
    with pytest.raises(ValueError, match="bits"):
        unpack(torch.zeros(8, dtype=torch.uint8), bits, 8)


def test_unpack_wrong_packed_length_raises():
    packed = pack(torch.zeros(2, 9, dtype=torch.uint8), 3)  # 6 bytes per row
    with pytest.raises(ValueError):
        unpack(packed, 3, 17)  # would need 9 bytes
    with pytest.raises(ValueError):
        unpack(packed[:, :5], 3, 9)
