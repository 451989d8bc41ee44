"""Bit packing of 2-8-bit unsigned codes into bytes.

Eight b-bit codes fill exactly b bytes, so codes are packed in groups of eight along the last
dim (little-endian bit order): 2-bit codes give 4 per byte, 3-bit 8 per 3 bytes, 4-bit 2 per byte.
The last dim is padded to a multiple of 8; `unpack` takes the true length back.
"""

from __future__ import annotations

import torch

from .int import check_bits


def packed_length(n: int, bits: int) -> int:
    return (n + 7) // 8 * bits


def pack(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """uint8 codes in [0, 2^bits) of shape [..., n] -> uint8 [..., packed_length(n, bits)]."""
    check_bits(bits)
    if codes.dtype != torch.uint8:
        raise ValueError(f"codes must be uint8, got {codes.dtype}")
    n = codes.shape[-1]
    pad = (-n) % 8
    if bits == 8:
        return torch.nn.functional.pad(codes, (0, pad))
    if codes.numel() and int(codes.max()) >= 2**bits:
        raise ValueError(f"codes exceed {bits} bits (max {int(codes.max())})")
    c = torch.nn.functional.pad(codes, (0, pad)).to(torch.int64)
    c = c.reshape(*codes.shape[:-1], (n + pad) // 8, 8)
    shifts = torch.arange(8, device=codes.device, dtype=torch.int64) * bits
    word = (c << shifts).sum(dim=-1, keepdim=True)  # 8*bits <= 64 bits, fits int64 for bits < 8
    byte_shifts = torch.arange(bits, device=codes.device, dtype=torch.int64) * 8
    out = (word >> byte_shifts) & 0xFF
    return out.to(torch.uint8).reshape(*codes.shape[:-1], packed_length(n, bits))


def unpack(packed: torch.Tensor, bits: int, n: int) -> torch.Tensor:
    """Inverse of `pack`: uint8 [..., packed_length(n, bits)] -> uint8 codes [..., n]."""
    check_bits(bits)
    if packed.shape[-1] != packed_length(n, bits):
        raise ValueError(f"packed last dim {packed.shape[-1]} does not hold {n} {bits}-bit codes")
    if bits == 8:
        return packed[..., :n]
    b = packed.to(torch.int64).reshape(*packed.shape[:-1], packed.shape[-1] // bits, bits)
    byte_shifts = torch.arange(bits, device=packed.device, dtype=torch.int64) * 8
    word = (b << byte_shifts).sum(dim=-1, keepdim=True)
    shifts = torch.arange(8, device=packed.device, dtype=torch.int64) * bits
    codes = (word >> shifts) & (2**bits - 1)
    return codes.to(torch.uint8).reshape(*packed.shape[:-1], packed.shape[-1] // bits * 8)[..., :n]
