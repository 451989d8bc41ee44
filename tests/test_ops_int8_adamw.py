"""The fused INT8 weight-only AdamW step (`lowbit.ops.int8_adamw`): the Triton kernel (in the interpreter
on CPU, on the GPU where there is one) against AdamW written in float64 from its equations, on fresh
random inputs; stochastic rounding's unbiasedness over seeds; the torch reference path; bad input."""

import pytest
import torch

from lowbit.ops import int8_adamw as A

pytestmark = pytest.mark.skipif(A.triton is None, reason="needs triton")

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
HP = dict(lr=3e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)


def state(n, k, gen):
    """int8 codes with per-row scales, a gradient and moments as after a few steps."""
    q = torch.randint(-127, 128, (n, k), generator=gen, dtype=torch.int8)
    s = (torch.rand(n, 1, generator=gen) + 0.1) * 1e-3
    g = torch.randn(n, k, generator=gen) * torch.rand(n, 1, generator=gen)
    m = torch.randn(n, k, generator=gen) * 0.1
    v = torch.rand(n, k, generator=gen) * 0.01
    return [t.to(DEVICE) for t in (q, s, g, m, v)]


def adamw_float64(q, s, g, m, v, step, lr, betas, eps, weight_decay):
    """AdamW (Loshchilov & Hutter) on the dequantized weight, then the new weight's per-row absmax scale
    and its exact quotient y = w / s, all in float64: (m, v, scale, y, y_tol). y_tol bounds float32's error
    in y: w is a few float32 operations on terms of size |q·s| and |lr·update| (8 ulps of their sum), then
    divided by s (8 ulps of y)."""
    b1, b2 = betas
    g, m, v = g.double().cpu(), m.double().cpu(), v.double().cpu()
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    w0 = q.double().cpu() * s.double().cpu() * (1 - lr * weight_decay)
    update = lr * (m / (1 - b1**step)) / ((v / (1 - b2**step)).sqrt() + eps)
    w = w0 - update
    scale = w.abs().amax(dim=1, keepdim=True) / 127
    y = w / scale
    return m, v, scale, y, 8 * 2**-24 * ((w0.abs() + update.abs()) / scale + y.abs())


@pytest.mark.parametrize("n,k", [(5, 64), (37, 200)])  # 200: a row shorter than its 256-wide block
def test_fused_step_nearest_matches_float64(n, k):
    gen = torch.Generator().manual_seed(n * k)
    q, s, g, m, v = state(n, k, gen)
    ref_m, ref_v, ref_s, y, y_tol = adamw_float64(q, s, g, m, v, 3, **HP)
    b1, b2 = HP["betas"]
    # float32 moments: two products and a sum, each rounded: within 3 ulps of the larger term's magnitude
    m_tol = 3 * 2**-24 * (b1 * m.abs() + (1 - b1) * g.abs()).cpu().double()
    v_tol = 3 * 2**-24 * (b2 * v.abs() + (1 - b2) * g * g).cpu().double()
    A.adamw_int8_step_triton(q, s, g, m, v, step=3, rounding="nearest", generator=None, **HP)
    assert ((m.cpu().double() - ref_m).abs() <= m_tol).all() and ((v.cpu().double() - ref_v).abs() <= v_tol).all()
    # the scale: w's absmax, within y_tol's relative error; the codes: the nearest integers to w / s up to
    # float32's error in w / s
    assert ((s.cpu().double() - ref_s).abs() <= ref_s * (y_tol / 127).amax(dim=1, keepdim=True)).all()
    assert ((q.cpu().double() - y).abs() <= 0.5 + y_tol).all()
    assert q.cpu().abs().amax(dim=1).eq(127).all()  # each row's absmax lands on the top code


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_fused_step_carries_a_nan_or_inf_gradient_into_its_row_scale(bad):
    """A NaN or an Inf in one row's gradient makes that row's new scale non-finite (a NaN: the update is
    m / sqrt(v) with both infinite or NaN), so the next forward's loss is non-finite and the loop stops; the
    other rows step as the float64 reference does."""
    gen = torch.Generator().manual_seed(17)
    q, s, g, m, v = state(6, 64, gen)
    g[3, 10] = bad
    ref_s = adamw_float64(q, s, g, m, v, 2, **HP)[2]
    A.adamw_int8_step_triton(q, s, g, m, v, step=2, rounding="nearest", generator=None, **HP)
    s = s.cpu().double()
    assert not s[3].isfinite().any()
    keep = torch.arange(6) != 3
    assert s[keep].isfinite().all() and torch.allclose(s[keep], ref_s[keep], rtol=1e-5)


def test_fused_step_stochastic_is_unbiased_and_floor_or_ceil():
    """R = 200 draws of each code from the same state: each code is floor or ceil of w / s, and the mean
    code is w / s within 5 standard errors sqrt((p(1−p) + 1/R) / R), p = frac(w / s).

    The draws: RUNS runs with different seeds, each on a state whose 48 columns are tiled REPS times along
    the row (RUNS · REPS = R). Tiling keeps each row's absmax, so every copy has the same w / s, and the
    kernel draws each element's noise from its own Philox offset (row · K + column): the REPS copies in a
    run are REPS independent roundings of the same y. R, and so the bound, is what it was with 200
    one-copy runs (the same power), at 8 interpreter runs instead of 200 (~1 s, not ~32 s: an
    interpreted program costs the same at 48 or 1200 columns)."""
    RUNS, REPS = 8, 25
    R = RUNS * REPS
    gen = torch.Generator().manual_seed(7)
    q0, s0, g0, m0, v0 = state(6, 48, gen)
    start = [q0.repeat(1, REPS), s0, g0.repeat(1, REPS), m0.repeat(1, REPS), v0.repeat(1, REPS)]
    _, _, _, y, y_tol = adamw_float64(*start, 1, **HP)
    codes = []
    draws = torch.Generator().manual_seed(123)
    for _ in range(RUNS):
        q, s, g, m, v = [t.clone() for t in start]
        A.adamw_int8_step_triton(q, s, g, m, v, step=1, rounding="stochastic", generator=draws, **HP)
        codes.append(q.cpu().double())
    codes = torch.stack(codes)  # [RUNS, 6, REPS · 48]
    lo, hi = (y - y_tol).floor(), (y + y_tol).ceil()
    assert ((codes >= lo) & (codes <= hi)).all()
    # the R draws of each of the 6 × 48 codes: [RUNS, 6, REPS, 48] -> [R, 6, 48]
    codes = codes.reshape(RUNS, 6, REPS, 48).transpose(1, 2).reshape(R, 6, 48)
    assert torch.equal(y, y[:, :48].repeat(1, REPS))  # the copies' w / s are the same numbers
    y, y_tol = y[:, :48], y_tol[:, :48]
    p = y - y.floor()
    assert ((codes.mean(0) - y).abs() <= 5 * ((p * (1 - p) + 1 / R) / R).sqrt() + y_tol).all()
    assert (codes != codes[0]).any()  # the draws differ
    run_codes = codes.reshape(RUNS, REPS, 6, 48)
    assert (run_codes[1:] != run_codes[:1]).any(dim=(1, 2, 3)).all()  # each run's seed gives other draws than the first's


def test_the_op_takes_the_kernel_on_cuda_and_the_reference_elsewhere():
    gen = torch.Generator().manual_seed(3)
    a, b = state(8, 96, gen), None
    b = [t.clone() for t in a]
    A.adamw_int8_step_(*a, step=2, rounding="nearest", **HP)
    A.adamw_int8_step_reference(*b, step=2, rounding="nearest", generator=None, **HP)
    if DEVICE == "cpu":  # the reference itself
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    else:  # the kernel: the same update up to float32 rounding
        assert (a[0].int() - b[0].int()).abs().max() <= 1 and (a[0] != b[0]).float().mean() < 0.01


def test_bad_input_is_refused_with_the_argument_named():
    gen = torch.Generator().manual_seed(4)
    q, s, g, m, v = state(4, 32, gen)
    with pytest.raises(ValueError, match="qweight must be a 2-D int8"):
        A.adamw_int8_step_(q.float(), s, g, m, v, step=1, **HP)
    with pytest.raises(ValueError, match="grad must be a contiguous float32 tensor of shape"):
        A.adamw_int8_step_(q, s, g.half(), m, v, step=1, **HP)
    with pytest.raises(ValueError, match="scale must hold one float32 per row"):
        A.adamw_int8_step_(q, s[:2], g, m, v, step=1, **HP)
    with pytest.raises(ValueError, match="rounding must be one of"):
        A.adamw_int8_step_(q, s, g, m, v, step=1, rounding="up", **HP)
