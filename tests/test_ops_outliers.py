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
    return outliers.find_triton(over.float()[None, :] * 10, 6.0)[1:]


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


def outlier_input(m: int, k: int, seed: int, dtype=torch.bfloat16) -> torch.Tensor:
    """x [m, k] with ~10 % of its columns over 6 somewhere, and NaNs in ~5 % of its columns (some over 6 elsewhere)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(m, k, generator=gen) * 11 - 5.5  # |x| < 6 ...
    big = torch.randperm(k, generator=gen)[: max(1, k // 10)]
    x[torch.randint(0, m, (big.numel(),), generator=gen), big] = 6.5 * torch.sign(torch.randn(big.numel(), generator=gen))
    nan = torch.randperm(k, generator=gen)[: k // 20]
    x[torch.randint(0, m, (nan.numel(),), generator=gen), nan] = float("nan")
    return x.to(dtype)


def want_outliers(x: torch.Tensor, threshold: float, exclude: torch.Tensor | None):
    """(skip mask, outlier columns) from the definition, in float64: a column with a NaN is never over."""
    xd = x.double()
    over = ~xd.isnan().any(0) & (xd.abs().nan_to_num(0).amax(0) > threshold)
    if exclude is not None:
        over &= ~exclude
        return over | exclude, over.nonzero().flatten()
    return over, over.nonzero().flatten()


GPU_ONLY = pytest.mark.skipif(DEVICE != "cuda", reason="the GPU's chunks: 1250 programs take the interpreter a minute")


@pytest.mark.parametrize("m,k", [(1, 1), (3, 64), (70, 150), (33, 300), pytest.param(2, 20000, marks=GPU_ONLY)])
@pytest.mark.parametrize("excluding", [False, True])
def test_find_lists_the_columns_over_the_threshold_in_order(m, k, excluding):
    """Many programs and the last one's list: chunks of its scan (64 columns in the interpreter, 4096 on the GPU: 20000 columns are five) and
    ragged ends of rows and columns; NaN is never over; excluded columns are skipped but never listed."""
    x = outlier_input(m, k, seed=m * k + excluding)
    exclude = (torch.rand(k, generator=torch.Generator().manual_seed(k)) < 0.3) if excluding else None
    want_skip, want_cols = want_outliers(x, 6.0, exclude)
    n = want_cols.numel()
    for _ in range(2):  # the counter is left at zero for the next call
        skip, cols, count = outliers.find_triton(x.to(DEVICE), 6.0, None if exclude is None else exclude.to(DEVICE))
        assert torch.equal(skip.cpu(), want_skip) and count.tolist() == [n] and torch.equal(cols[:n].cpu().long(), want_cols)
    ref = outliers._find_reference(x, 6.0, exclude)
    assert torch.equal(ref[0], want_skip) and torch.equal(ref[1][:n].long(), want_cols) and ref[2].tolist() == [n]


def test_find_takes_strided_rows_and_no_rows():
    x = outlier_input(40, 96, seed=5, dtype=torch.float32)
    wide = torch.full((40, 200), float("nan"))
    wide[:, 50:146] = x
    skip, cols, count = outliers.find_triton(wide[:, 50:146].to(DEVICE), 6.0)
    want_skip, want_cols = want_outliers(x, 6.0, None)
    assert torch.equal(skip.cpu(), want_skip) and torch.equal(cols[: int(count)].cpu().long(), want_cols)
    for fn in (outliers.find_triton, outliers._find_reference):
        skip, _, count = fn(torch.empty(0, 8, device=DEVICE if fn is outliers.find_triton else "cpu"), 6.0)
        assert not skip.any() and count.tolist() == [0]


def test_find_names_bad_arguments():
    with pytest.raises(ValueError, match="x must be 2-D"):
        outliers.find(torch.ones(3), 6.0)
    with pytest.raises(ValueError, match="exclude must be a bool mask of x's 3 columns"):
        outliers.find(torch.ones(2, 3), 6.0, torch.ones(4, dtype=torch.bool))


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


def test_find_op_opcheck():
    """Schema, fake and autograd registration (on the CPU, whose reference path defines every entry of cols)."""
    x = outlier_input(9, 40, seed=3)
    torch.library.opcheck(outliers._find, (x, 6.0, None))
    torch.library.opcheck(outliers._find, (x, 6.0, torch.rand(40) < 0.5))
