"""Codebook quantization: each element stores the index of its nearest value in a small table.

NF4, the FP4 variants and k-means all store codes this way; they differ only in the table.
"""

from __future__ import annotations

import torch

from .int import check_bits, check_finite


def nearest(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """uint8 index of the nearest table value for every element (O(n log k), no n×k matrix)."""
    values, order = torch.sort(table.to(x.device, torch.float32))
    midpoints = (values[1:] + values[:-1]) / 2
    pos = torch.bucketize(x.float().contiguous(), midpoints)
    return order[pos].to(torch.uint8)


def lookup(codes: torch.Tensor, table: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return table.to(codes.device, dtype)[codes.long()]


def kmeans(x: torch.Tensor, bits: int, iters: int = 30) -> tuple[torch.Tensor, torch.Tensor]:
    """1-D Lloyd's k-means over all elements of x (Deep Compression's weight sharing).

    Centroids start evenly spaced between min and max (the paper's best initialisation: it keeps
    the rare large weights represented). Returns (uint8 codes shaped like x, float32 centroids).
    """
    check_bits(bits)
    check_finite(x)
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    flat = x.detach().float().reshape(-1)
    k = 2**bits
    centroids = torch.linspace(float(flat.min()), float(flat.max()), k, device=flat.device)
    for _ in range(iters):
        codes = nearest(flat, centroids).long()
        sums = torch.zeros(k, device=flat.device).scatter_add_(0, codes, flat)
        counts = torch.zeros(k, device=flat.device).scatter_add_(0, codes, torch.ones_like(flat))
        updated = torch.where(counts > 0, sums / counts.clamp_min(1), centroids)
        if torch.equal(updated, centroids):
            break
        centroids = updated
    return nearest(flat, centroids).reshape(x.shape), centroids
