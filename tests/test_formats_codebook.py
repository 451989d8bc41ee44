"""Codebook quantization (lowbit.formats.codebook): nearest-value codes and 1-D Lloyd k-means."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import zlib

import pytest
import torch

from lowbit.formats import codebook


def make_gen(*key) -> torch.Generator:
    return torch.Generator().manual_seed(zlib.crc32(repr(key).encode()))


def mse(x, codes, centroids) -> float:
    return (x.double() - centroids.double()[codes.long()]).pow(2).mean().item()


@pytest.mark.parametrize("k", [3, 16, 256])
def test_nearest_equals_brute_force_argmin(k):
    gen = make_gen("nearest", k)
    table = torch.randn(k, generator=gen) * 2  # unsorted
    x = torch.randn(64, 200, generator=gen) * 3  # includes values outside the table's range
    codes = codebook.nearest(x, table)
    assert codes.dtype == torch.uint8 and codes.shape == x.shape
    d = (x.double()[..., None] - table.double()).abs()
    best = d.min(-1).values
    got = (x.double() - table.double()[codes.long()]).abs()
    # lowbit compares against float32 midpoints: a pick may differ only within float32 rounding
    # of a midpoint, i.e. its distance exceeds the best by at most ~1 ulp of the values
    assert (got <= best + 1e-6 * (1 + x.double().abs())).all()
    not_best = (got - best) > 0  # only possible within float32 rounding of a midpoint
    assert not_best.float().mean() < 1e-3
    assert torch.equal(codebook.lookup(codes, table), table[codes.long()])


def test_nearest_exact_table_values_map_to_themselves():
    table = torch.tensor([0.3, -1.0, 2.5, 0.0, -0.2])
    codes = codebook.nearest(table, table)
    assert codes.tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_kmeans_codes_centroids_and_assignment(bits):
    gen = make_gen("km", bits)
    x = torch.randn(96, 160, generator=gen) * 0.05
    codes, centroids = codebook.kmeans(x, bits, iters=30)
    assert codes.dtype == torch.uint8 and codes.shape == x.shape
    assert int(codes.max()) < 2**bits
    assert centroids.shape == (2**bits,) and centroids.dtype == torch.float32
    assert torch.isfinite(centroids).all()
    # the returned codes are the nearest-centroid assignment (brute force)
    d = (x.double()[..., None] - centroids.double()).abs()
    got = (x.double() - centroids.double()[codes.long()]).abs()
    assert (got <= d.min(-1).values + 1e-7).all()
    # the centroids can be sorted (with the codes remapped) without changing the reconstruction
    order = torch.argsort(centroids)
    remap = torch.empty_like(order)
    remap[order] = torch.arange(2**bits)
    assert torch.equal(centroids[order][remap[codes.long()]], centroids[codes.long()])
    # every used centroid is the mean of its members (Lloyd's fixed point, or near it after 30 iters)
    if bits <= 4:
        for j in codes.unique().tolist():
            members = x.reshape(-1)[codes.reshape(-1) == j]
            assert abs(members.double().mean().item() - centroids[j].item()) <= 0.02 * x.std().item()


def test_kmeans_loss_does_not_increase_with_iterations():
    """Lloyd's algorithm: the assignment and the mean update each never increase the MSE."""
    gen = make_gen("mono")
    x = torch.randn(128, 128, generator=gen) ** 3  # heavy-tailed, so the linspace start is poor
    losses = []
    for iters in [1, 2, 3, 5, 8, 13, 30]:
        codes, centroids = codebook.kmeans(x, 3, iters=iters)
        losses.append(mse(x, codes, centroids))
    for a, b in zip(losses, losses[1:]):
        assert b <= a * (1 + 1e-6)
    assert losses[-1] < losses[0] * 0.9  # and the iterations do something on this data
    # a linspace codebook (the initialisation, 0 iterations) is no better than 1 iteration
    init = torch.linspace(float(x.min()), float(x.max()), 8)
    assert losses[0] <= mse(x, codebook.nearest(x, init), init) * (1 + 1e-6)


@pytest.mark.parametrize("bits", [2, 3])
def test_kmeans_recovers_well_separated_cluster_means(bits):
    """k clusters with means ~5 apart and std 0.2: the linspace start puts one centroid in each
    cluster's Voronoi cell, so Lloyd converges to the clusters' sample means and labels."""
    k = 2**bits
    gen = make_gen("clusters", bits)
    means = torch.arange(k, dtype=torch.float32) * 5 + (torch.rand(k, generator=gen) - 0.5)
    sizes = torch.randint(200, 600, (k,), generator=gen)
    labels = torch.cat([torch.full((int(n),), i) for i, n in enumerate(sizes)])
    x = means[labels] + 0.2 * torch.randn(labels.numel(), generator=gen)
    perm = torch.randperm(labels.numel(), generator=gen)
    x, labels = x[perm], labels[perm]
    codes, centroids = codebook.kmeans(x, bits, iters=30)
    order = torch.argsort(centroids)
    # cluster i <-> i-th smallest centroid
    rank = torch.empty_like(order)
    rank[order] = torch.arange(k)
    assert torch.equal(rank[codes.long()], labels)
    sample_means = torch.stack([x[labels == i].double().mean() for i in range(k)])
    torch.testing.assert_close(centroids[order].double(), sample_means, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(centroids[order], means, rtol=0, atol=0.1)  # 0.2/sqrt(200) ≈ 0.014


def test_kmeans_errors():
    with pytest.raises(ValueError, match="bits"):
        codebook.kmeans(torch.randn(64), 1)
    with pytest.raises(ValueError, match="bits"):
        codebook.kmeans(torch.randn(64), 9)
    with pytest.raises(ValueError, match="iters"):
        codebook.kmeans(torch.randn(64), 4, iters=0)
    x = torch.randn(64)
    x[3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        codebook.kmeans(x, 4)
