"""LLM.int8()'s outlier columns (`ops.outliers`): the Triton kernels (in the interpreter on CPU, on the GPU where there is
one) against float64 and torch on fresh random inputs, with the count read on the device."""

import pytest
import torch

from lowbit.ops import outliers

pytestmark = pytest.mark.skipif(outliers.triton is None, reason="needs triton")

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def operands(m: int, n: int, k: int, n_out: int, dtype: torch.dtype, seed: int):
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randn(m, k, generator=gen) * 4).to(dtype).to(DEVICE)
    w = torch.randint(-127, 128, (n, k), generator=gen, dtype=torch.int8).to(DEVICE)
    s = (torch.rand(n, 1, generator=gen) + 0.1).to(DEVICE) / 127
    over = torch.zeros(k, dtype=torch.bool)
    over[torch.randperm(k, generator=gen)[:n_out]] = True
    out = torch.randn(m, n, generator=gen).to(dtype).to(DEVICE)
    return x, w, s, over.to(DEVICE), out


def columns(over: torch.Tensor):
    """The (cols, count) of `find` for the columns of a mask."""
    return outliers.find_triton(over.float() * 10, 6.0)[1:]


@pytest.mark.parametrize("m,n,k,n_out", [(1, 16, 32, 1), (33, 40, 96, 17), (70, 24, 64, 64), (5, 50, 48, 3)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_outlier_product_matches_float64(m, n, k, n_out, dtype):
    x, w, s, over, out = operands(m, n, k, n_out, dtype, hash((m, n, k, n_out, str(dtype))) % 2**31)
    before = out.clone()
    cols, count = columns(over)
    got = outliers.add_product_triton(out, x, w, s, cols, count)
    assert got is out
    c = over.nonzero().flatten()
    terms = x[:, c].double() @ (w[:, c].double() * s.double()).t()
    expected = before.double() + terms
    size = before.double().abs() + x[:, c].double().abs() @ (w[:, c].double().abs() * s.double()).t()
    # fp32: products and sums rounded in fp32 (K ≤ 96 terms); bf16 out: its one rounding, under an ulp (2^-7: the
    # interpreter's fp32 → bf16 cast truncates, 16.743 became 16.625)
    tol = (1e-5 if dtype == torch.float32 else 2**-7) * size
    assert ((out.double() - expected).abs() <= tol).all()


def test_no_outlier_leaves_out_as_it_was():
    x, w, s, over, out = operands(20, 32, 64, 0, torch.float32, 1)
    before = out.clone()
    outliers.add_product_triton(out, x, w, s, *columns(over))
    assert torch.equal(out, before)


def test_a_nan_in_an_outlier_column_reaches_its_row():
    x, w, s, over, out = operands(18, 16, 32, 2, torch.float32, 2)
    col = over.nonzero().flatten()[0]
    x[3, col] = float("nan")
    outliers.add_product_triton(out, x, w, s, *columns(over))
    assert out[3].isnan().all() and not out[torch.arange(18, device=out.device) != 3].isnan().any()


@pytest.mark.parametrize("k", [1, 64, 150, 2500, 20000])
def test_find_lists_the_columns_over_the_threshold_in_order(k):
    """Chunks of the kernel's scan (64 columns in the interpreter; on the GPU one of up to 16384) and a ragged end; NaN is
    never over."""
    gen = torch.Generator().manual_seed(k)
    peak = torch.rand(k, generator=gen) * 8
    peak[torch.randperm(k, generator=gen)[: k // 10]] = float("nan")
    skip, cols, count = outliers.find_triton(peak.to(torch.bfloat16).to(DEVICE), 6.0)
    want = peak.to(torch.bfloat16).float() > 6.0
    n = int(want.sum())
    assert torch.equal(skip.cpu(), want) and count.tolist() == [n] and torch.equal(cols[:n].cpu().long(), want.nonzero().flatten())
    ref = outliers._find_reference(peak.to(torch.bfloat16), 6.0)
    assert torch.equal(ref[0], want) and torch.equal(ref[1][:n], cols[:n].cpu()) and ref[2].tolist() == [n]


def test_find_names_a_bad_peak():
    with pytest.raises(ValueError, match="peak must be 1-D"):
        outliers.find(torch.ones(2, 3), 6.0)


def test_the_reference_path_agrees_with_the_kernel():
    x, w, s, over, out = operands(9, 24, 48, 5, torch.float32, 3)
    a, b = out.clone(), out.cpu().clone()
    cols, count = columns(over)
    outliers.add_product_triton(a, x, w, s, cols, count)
    outliers.add_product_reference(b, x.cpu(), w.cpu(), s.cpu(), cols.cpu(), count.cpu())
    assert torch.allclose(a.cpu(), b.cpu(), rtol=1e-5, atol=1e-5)


def test_bad_shapes_are_named():
    x, w, s, over, out = operands(4, 8, 16, 2, torch.float32, 4)
    cols, count = columns(over)
    with pytest.raises(ValueError, match="out must be"):
        outliers.add_product_(out[:, :5], x, w, s, cols, count)
    with pytest.raises(ValueError, match="qweight must be int8"):
        outliers.add_product_(out, x, w.float(), s, cols, count)
    with pytest.raises(ValueError, match="scale must"):
        outliers.add_product_(out, x, w, s[:3], cols, count)
