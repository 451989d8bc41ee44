"""NF4 (QLoRA): 4-bit NormalFloat with block-wise absmax, and double quantization of the absmax.

The 16 values are quantiles of N(0, 1) normalised to [-1, 1], with an exact zero: 8 from the
positive half, 7 from the negative half (QLoRA, Dettmers et al. 2023). The table below is that
definition evaluated (tests rebuild it from the normal quantiles); it equals bitsandbytes' table,
so for the same block size lowbit's dequantized NF4 weights equal bitsandbytes'.

Double quantization stores the float32 block absmax as 8-bit codes of the "dynamic" map
(Dettmers 2022, 8-bit optimizers): subtract the mean, then block-wise (256) absmax over a
signed 256-entry table with values spread over 7 decades. That costs 8/64 + 32/(64·256) bits per
weight instead of 32/64 at block 64.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from . import codebook
from .int import check_finite

NF4_VALUES = torch.tensor(
    [
        -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
        -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
        0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
        0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
    ],
    dtype=torch.float32,
)
ABSMAX_BLOCK = 256  # block size of the second quantization, as in bitsandbytes


def dynamic_map() -> torch.Tensor:
    """Signed 8-bit dynamic map: for decade i = 0..6, 2^i fraction midpoints of linspace(0.1, 1)
    scaled by 10^(i-6), both signs; plus 0 and 1. 254 + 2 = 256 values, sorted."""
    values = [0.0, 1.0]
    for i in range(7):
        edges = torch.linspace(0.1, 1, 2**i + 1, dtype=torch.float32)
        means = ((edges[:-1] + edges[1:]) / 2.0 * 10 ** (i - 6)).tolist()
        values += means + [-m for m in means]
    return torch.tensor(sorted(values), dtype=torch.float32)


@functools.cache
def _table_on(name: str, device: torch.device) -> torch.Tensor:
    """A codebook copied to `device` once. A host-to-device copy on every forward would stall the
    GPU on the host and cannot be captured in a CUDA graph (it synchronizes)."""
    return (NF4_VALUES if name == "nf4" else dynamic_map()).to(device)


@dataclass
class NF4Quantized:
    codes: torch.Tensor  # uint8 [..., n], one 4-bit code per element (pack for storage)
    absmax: torch.Tensor | None  # float32 [n_blocks] when not double-quantized
    absmax_codes: torch.Tensor | None  # uint8 [n_blocks] when double-quantized
    absmax_scale: torch.Tensor | None  # float32 [ceil(n_blocks / 256)]
    absmax_offset: torch.Tensor | None  # float32 scalar
    block_size: int

    def block_absmax(self) -> torch.Tensor:
        if self.absmax is not None:
            return self.absmax
        return dequantize_absmax(self.absmax_codes, self.absmax_scale, self.absmax_offset)

    def dequantize(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return dequantize(self.codes, self.block_absmax(), self.block_size, dtype)


def quantize(x: torch.Tensor, block_size: int = 64, double_quant: bool = False) -> NF4Quantized:
    """Blocks of `block_size` consecutive elements (x flattened), each scaled by its absmax."""
    check_finite(x)
    if block_size < 1 or x.numel() % block_size:
        raise ValueError(f"block_size {block_size} must be positive and divide the number of elements {x.numel()}")
    blocks = x.detach().float().reshape(-1, block_size)
    absmax = blocks.abs().amax(dim=1)
    codes = codebook.nearest(blocks / absmax.clamp_min(torch.finfo(torch.float32).tiny)[:, None], NF4_VALUES)
    q = NF4Quantized(codes.reshape(x.shape), absmax, None, None, None, block_size)
    if double_quant:
        q.absmax_codes, q.absmax_scale, q.absmax_offset = quantize_absmax(absmax)
        q.absmax = None
    return q


def dequantize(codes: torch.Tensor, absmax: torch.Tensor, block_size: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    values = codebook.lookup(codes.reshape(-1, block_size), _table_on("nf4", codes.device))
    return (values * absmax.float()[:, None]).reshape(codes.shape).to(dtype)


def quantize_absmax(absmax: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Second quantization: (uint8 codes, float32 per-256-block scales, float32 offset)."""
    offset = absmax.mean()
    centered = absmax - offset
    n = centered.numel()
    padded = torch.nn.functional.pad(centered, (0, (-n) % ABSMAX_BLOCK)).reshape(-1, ABSMAX_BLOCK)
    scale = padded.abs().amax(dim=1)
    normed = padded / scale.clamp_min(torch.finfo(torch.float32).tiny)[:, None]
    codes = codebook.nearest(normed, dynamic_map()).reshape(-1)[:n].clone()  # own storage: safetensors refuses views
    return codes, scale, offset


def dequantize_absmax(codes: torch.Tensor, scale: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    n = codes.numel()
    padded = torch.nn.functional.pad(codebook.lookup(codes, _table_on("dynamic", codes.device)), (0, (-n) % ABSMAX_BLOCK))
    return (padded.reshape(-1, ABSMAX_BLOCK) * scale[:, None]).reshape(-1)[:n] + offset
