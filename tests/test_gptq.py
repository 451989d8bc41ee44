"""GPTQ (Frantar et al.): lowbit's blocked, Cholesky-based implementation against a slow float64
reference written directly from the paper's equations, then its guarantees at layer and model level."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import copy
import dataclasses
import math
import warnings

import pytest
import torch
import torch.nn.functional as F

import lowbit
from lowbit.formats import int as intfmt
from lowbit.formats.error import sqnr
from lowbit.formats.packing import pack, unpack
from lowbit.layers import IntWeightLinear
from lowbit.methods.gptq import GPTQ, HessianObserver, gptq_quantize, inverse_hessian_factor

from tiny_models import MODELS, logits, make_gen, tiny_gpt2, token_ids

pytestmark = pytest.mark.usefixtures("one_thread")


# ----------------------------------------------------------------------------------------------
# The float64 reference: one column at a time, the explicit inverse Hessian eliminated column by
# column (no Cholesky factor, no lazy batches), group parameters from the group's current values.
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Ref:
    codes: torch.Tensor  # [rows, n], original column order
    dq: torch.Tensor  # dequantized weight, original column order
    scale: torch.Tensor  # [rows, n_groups], groups in quantization order
    zero: torch.Tensor | None
    g_idx: torch.Tensor  # [n] group of each original column
    perm: torch.Tensor  # quantization order
    pre: torch.Tensor  # [rows, n] value that was rounded (w/s + z), permuted order
    zero_pre: torch.Tensor  # [rows, n] unrounded zero point of the group each column used, permuted order

    def __repr__(self):  # keep failure reports short (and fast): no tensor dumps
        return f"Ref(rows={self.codes.shape[0]}, n={self.codes.shape[1]})"


def reference_gptq(W, H, bits, group_size, symmetric, damp=0.01, act_order=False, static_groups=False) -> Ref:
    W = W.double().clone()
    H = H.double().clone()
    rows, n = W.shape
    g = n if group_size == -1 else group_size
    static = None
    if static_groups:  # parameters of the original contiguous groups of the original weight
        static = [intfmt.affine_params(W[:, i : i + g], bits, symmetric) for i in range(0, n, g)]
        static_zero_pre = [None if symmetric else -W[:, i : i + g].amin(1).clamp(max=0) / static[i // g][0] for i in range(0, n, g)]
    perm = torch.argsort(torch.diag(H), descending=True) if act_order else torch.arange(n)
    W, H = W[:, perm], H[perm][:, perm]
    lam = damp * torch.diag(H).mean()
    Hinv = torch.linalg.inv(H + lam * torch.eye(n, dtype=torch.float64))
    codes = torch.zeros_like(W)
    dq_all = torch.zeros_like(W)
    pre = torch.zeros_like(W)
    zero_pre = torch.full_like(W, 0.25)  # 0.25: "not a tie" where there is no zero point
    scale = torch.zeros(rows, n // g, dtype=torch.float64)
    zero = None if symmetric else torch.zeros(rows, n // g, dtype=torch.float64)
    group_of = torch.zeros(n, dtype=torch.long)
    for j in range(n):
        if static is not None:
            gi = int(perm[j]) // g
            s, z = static[gi]
            zp = static_zero_pre[gi]
        elif j % g == 0:
            gi = j // g
            s, z = intfmt.affine_params(W[:, j : j + g], bits, symmetric)
            zp = None if symmetric else -W[:, j : j + g].amin(1).clamp(max=0) / s
        scale[:, gi] = s
        if z is not None:
            zero[:, gi] = z
            zero_pre[:, j] = zp
        group_of[j] = gi
        w = W[:, j]
        pre[:, j] = w / s + (0 if z is None else z)
        q = intfmt.quantize_with(w, s, z, bits, symmetric)
        dq = (q if z is None else q - z) * s
        codes[:, j], dq_all[:, j] = q, dq
        err = (w - dq) / Hinv[j, j]
        W[:, j:] -= err[:, None] * Hinv[j, j:][None, :]
        Hinv = Hinv - torch.outer(Hinv[:, j], Hinv[j, :]) / Hinv[j, j]  # eliminate column j
    inv = torch.argsort(perm)
    return Ref(codes[:, inv], dq_all[:, inv], scale, zero, group_of[inv], perm, pre, zero_pre)


# float32 (lowbit) and float64 (reference) carry the updated weights with different rounding:
# |w/s| <= 2^8 and a column accumulates up to n = 256 rank-1 updates, so the two values that are
# rounded differ by about 2^8 · 2^-24 · sqrt(256) ≈ 2.4e-4 at most (1e-5 measured). A code can only
# differ where the rounded value lies that close to a rounding boundary (x.5): a tie.
TIE = 1e-3


def near_tie(v: torch.Tensor) -> torch.Tensor:
    return (v - v.floor() - 0.5).abs() < TIE


def divergent_rows(codes: torch.Tensor, ref: Ref) -> list[int]:
    """Rows whose codes differ from the reference; each must start diverging at a tie.

    One flipped tie changes that code by one step, and GPTQ feeds the step (err / Hinv[j, j]) into
    every later column of the row, so one tie can cascade into many later codes of its row (up to a
    quarter of a 256-column row was seen, i.e. 0.4% of all codes from a single tie). So a flat "≤ 0.1%
    of codes" allowance is the wrong measure; instead: every divergence must *begin* at a tie (of the
    code, or of the group's zero point), and only a few rows may diverge at all."""
    diff = (codes.double() != ref.codes)[:, ref.perm]  # quantization order
    rows = diff.any(dim=1).nonzero().flatten().tolist()
    for r in rows:
        j0 = int(diff[r].nonzero()[0])
        tie = bool(near_tie(ref.pre[r, j0])) or bool(near_tie(ref.zero_pre[r, j0]))
        assert tie, (
            f"row {r} first differs at column {int(ref.perm[j0])} (order {j0}), where the reference rounded "
            f"{ref.pre[r, j0].item():.6f} (zero point {ref.zero_pre[r, j0].item():.6f}): not a rounding tie"
        )
    return rows


def problem(seed, rows=64, n=256, tokens=1024):
    """W and H = 2XᵀX/N for inputs with correlated features (X = Z·A) of unequal scales."""
    gen = make_gen("gptq-problem", seed)
    A = torch.randn(n, n, generator=gen) / math.sqrt(n) + 0.3 * torch.eye(n)
    col_scale = torch.exp(0.5 * torch.randn(n, generator=gen))
    X = (torch.randn(tokens, n, generator=gen) @ A) * col_scale
    W = torch.randn(rows, n, generator=gen)
    H = 2 * X.t() @ X / tokens
    return W, H, X


def check_against_reference(cfg: GPTQ, W, H, **ref_kw):
    r = gptq_quantize(W, H, cfg)
    ref = reference_gptq(W, H, cfg.bits, cfg.group_size, cfg.symmetric, cfg.damp, act_order=cfg.act_order, **ref_kw)
    bad = divergent_rows(r.codes, ref)
    assert len(bad) <= 3, f"{len(bad)} of {W.shape[0]} rows diverge"  # 0 or 1 seen over many seeds
    ok = [i for i in range(W.shape[0]) if i not in bad]
    # parameters of the rows that never diverged: the same up to float32 rounding of the updates
    torch.testing.assert_close(r.scale[ok].double(), ref.scale[ok], rtol=1e-4, atol=0)
    if cfg.symmetric:
        assert r.zero is None
    else:
        assert torch.equal(r.zero[ok].double(), ref.zero[ok])
    return r, ref, ok


BITS = [2, 3, 4, 8]
GROUPS = [-1, 32, 128]


@pytest.mark.parametrize("block_size", [128, 48])
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("group_size", GROUPS)
@pytest.mark.parametrize("bits", BITS)
def test_codes_match_float64_reference(bits, group_size, symmetric, block_size):
    """Same codes as the equations, in the natural column order. block_size=48 does not divide
    the 256 columns nor the group sizes, so groups straddle lazy-batch boundaries."""
    W, H, _ = problem(("natural", bits, group_size, symmetric, block_size))
    r, ref, _ = check_against_reference(GPTQ(bits=bits, group_size=group_size, symmetric=symmetric, block_size=block_size), W, H)
    assert r.g_idx is None
    assert r.codes.dtype == (torch.int8 if symmetric else torch.uint8)
    qmin, qmax = intfmt.code_range(bits, symmetric)
    assert int(r.codes.min()) >= qmin and int(r.codes.max()) <= qmax


@pytest.mark.parametrize("block_size", [128, 48])
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("group_size", [-1, 32])
@pytest.mark.parametrize("bits", [3, 4])
def test_act_order_matches_reference_on_permuted_problem(bits, group_size, symmetric, block_size):
    """act_order = the reference run on (W[:, perm], H[perm, perm]), perm = argsort(diag H, desc),
    codes mapped back to the original columns."""
    W, H, _ = problem(("act", bits, group_size, symmetric, block_size))
    perm = torch.argsort(torch.diag(H), descending=True)
    assert not torch.equal(perm, torch.arange(len(perm)))  # the order really changes
    cfg = GPTQ(bits=bits, group_size=group_size, symmetric=symmetric, block_size=block_size, act_order=True)
    r, ref, _ = check_against_reference(cfg, W, H)
    assert torch.equal(ref.perm, perm)
    if group_size == -1:
        assert r.g_idx is None
    else:
        assert torch.equal(r.g_idx.long(), ref.g_idx)


def test_group_parameters_use_updated_weights_across_lazy_batches():
    """Regression for the straddling-group case on its own: with block_size=48 and group_size=32 the
    group starting at column 32 spans columns 32..63, but columns 48..63 belong to the next lazy
    batch. Their values at the time the group starts must include the updates from columns 0..31
    (the reference's "current values"); scales computed from the not-yet-updated columns differ."""
    W, H, _ = problem("straddle")
    # block_size=32: every group inside one lazy batch (passes); 48: groups straddle batches
    for block_size in (32, 48):
        check_against_reference(GPTQ(bits=4, group_size=32, symmetric=True, block_size=block_size), W, H)


# ----------------------------------------------------------------------------------------------
# Layer-level guarantees
# ----------------------------------------------------------------------------------------------


def rtn_dequant(W, bits, group_size, symmetric):
    gran = "channel" if group_size == -1 else "group"
    return intfmt.quantize(W, bits, symmetric=symmetric, granularity=gran, group_size=None if group_size == -1 else group_size).dequantize()


@pytest.mark.parametrize("act_order", [False, True])
@pytest.mark.parametrize("bits,group_size,symmetric", [(2, -1, False), (3, 32, True), (4, 32, False), (4, -1, True), (8, 128, False)])
def test_layer_output_error_not_above_rtn(bits, group_size, symmetric, act_order):
    for seed in range(3):
        W, H, X = problem(("vs-rtn", bits, group_size, symmetric, act_order, seed), rows=48, n=128, tokens=512)
        cfg = GPTQ(bits=bits, group_size=group_size, symmetric=symmetric, act_order=act_order)
        Wq = cfg.layer_from_hessian(W, None, H).dequantize_weight()
        ref = X.double() @ W.double().t()
        err_gptq = (ref - X.double() @ Wq.double().t()).norm().item()
        err_rtn = (ref - X.double() @ rtn_dequant(W, bits, group_size, symmetric).double().t()).norm().item()
        assert err_gptq <= err_rtn, (seed, err_gptq, err_rtn)


@pytest.mark.parametrize("act_order", [False, True])
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("group_size", [-1, 32])
def test_dead_input_columns(group_size, symmetric, act_order):
    """An input feature that is always zero: diag H = 0 there. No NaN; its weight is zeroed and its
    codes cannot influence anything else; the layer output on the real inputs is unaffected."""
    W, _, X = problem(("dead", group_size, symmetric, act_order), rows=32, n=128, tokens=512)
    dead = torch.tensor([5, 77, 127])
    X[:, dead] = 0.0
    H = 2 * X.t() @ X / X.shape[0]
    assert (torch.diag(H)[dead] == 0).all()
    cfg = GPTQ(bits=4, group_size=group_size, symmetric=symmetric, act_order=act_order)
    r = gptq_quantize(W, H, cfg)
    assert torch.isfinite(r.scale).all()
    layer = cfg.layer_from_hessian(W, None, H)
    Wq = layer.dequantize_weight()
    assert torch.isfinite(Wq).all()
    assert (Wq[:, dead] == 0).all()  # zeroed weight quantizes to an exact 0 (zero point is integral)
    # whatever the dead columns held, nothing else changes
    W2 = W.clone()
    W2[:, dead] = 1e3 * torch.randn(W.shape[0], len(dead), generator=make_gen("dead-w2"))
    r2 = gptq_quantize(W2, H, cfg)
    assert torch.equal(r2.codes, r.codes) and torch.equal(r2.scale, r.scale)
    out = layer(X)
    assert torch.isfinite(out).all()
    assert torch.equal(out, cfg.layer_from_hessian(W2, None, H)(X))
    # and the output error is still GPTQ's, not worse than RTN's (which is on the live columns only)
    ref = X.double() @ W.double().t()
    Wlive = W.clone()
    Wlive[:, dead] = 0
    err_rtn = (ref - X.double() @ rtn_dequant(Wlive, 4, group_size, symmetric).double().t()).norm()
    assert (ref - out.double()).norm() <= err_rtn


def rank_deficient_hessian(n=64, rank=8, seed="rank"):
    gen = make_gen(seed)
    X = torch.randn(512, rank, generator=gen) @ torch.randn(rank, n, generator=gen)
    return 2 * X.t() @ X / 512


def test_singular_hessian_raises_damp_with_warning():
    """A rank-8 Hessian of 64 inputs with a damp too small to matter in float32: the first Cholesky
    fails, a warning names the damp, and the factor comes back with a larger damp."""
    H = rank_deficient_hessian()
    assert torch.linalg.matrix_rank(H.double(), hermitian=True, rtol=1e-6) <= 8
    with pytest.warns(UserWarning, match="damp"):
        U, used = inverse_hessian_factor(H, 1e-9)
    assert used > 1e-9
    assert math.isclose(math.log10(used / 1e-9), round(math.log10(used / 1e-9)), abs_tol=1e-9)  # tenfold steps
    assert torch.isfinite(U).all() and torch.equal(U, torch.triu(U)) and (torch.diag(U) > 0).all()
    W = torch.randn(16, 64, generator=make_gen("rank-w"))
    with pytest.warns(UserWarning, match="damp"):
        r = gptq_quantize(W, H, GPTQ(bits=4, group_size=32, damp=1e-9))
    assert r.damp == used
    assert torch.isfinite(r.scale).all() and torch.isfinite(r.zero.float()).all()
    dq = intfmt.dequantize(r.codes, r.scale, r.zero, "group", 32)
    assert torch.isfinite(dq).all()


def test_factor_is_cholesky_of_dampened_inverse():
    """Well-conditioned case: no warning, damp unchanged, UᵀU = (H + λI)⁻¹ (float64 by hand)."""
    W, H, _ = problem("factor", n=64)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        U, used = inverse_hessian_factor(H, 0.01)
    assert used == 0.01
    Hd = H.double() + 0.01 * torch.diag(H.double()).mean() * torch.eye(64, dtype=torch.float64)
    expect = torch.linalg.cholesky(torch.linalg.inv(Hd), upper=True)
    torch.testing.assert_close(U.double(), expect, rtol=1e-3, atol=1e-4 * expect.abs().max().item())


def test_sparse_indefinite_hessian_warns_and_gives_finite_codes():
    """H = 0 except a few off-diagonal entries: every column is 'dead' (diag 0 → 1), leaving an
    indefinite matrix that needs a much larger damp; codes still come out finite."""
    n = 64
    H = torch.zeros(n, n)
    H[0, 1] = H[1, 0] = 5.0
    H[10, 20] = H[20, 10] = -3.0
    W = torch.randn(16, n, generator=make_gen("sparse-w"))
    with pytest.warns(UserWarning, match="damp"):
        r = gptq_quantize(W, H, GPTQ(bits=4, group_size=-1))
    assert r.damp > 0.01
    assert torch.isfinite(r.scale).all()
    dq = intfmt.dequantize(r.codes, r.scale, r.zero, "channel")
    assert torch.isfinite(dq).all()


@pytest.mark.parametrize("where", ["diagonal", "off-diagonal", "inf"])
def test_hopeless_hessian_raises_value_error(where):
    H = rank_deficient_hessian(seed=("hopeless", where)) + torch.eye(64)
    if where == "diagonal":
        H[3, 3] = float("nan")
    elif where == "off-diagonal":
        H[3, 5] = H[5, 3] = float("nan")
    else:
        H[7, 7] = float("inf")
    W = torch.randn(8, 64, generator=make_gen("hopeless-w"))
    with pytest.warns(UserWarning, match="damp"), pytest.raises(ValueError, match="positive definite"):
        inverse_hessian_factor(H, 0.01)
    with pytest.warns(UserWarning, match="damp"), pytest.raises(ValueError, match="positive definite"):
        gptq_quantize(W, H, GPTQ(bits=4, group_size=-1))


def test_zero_hessian_cannot_be_dampened():
    """λ = damp·mean(diag H) = 0 for H = 0: no damp helps, ValueError after the retries."""
    with pytest.warns(UserWarning, match="damp"), pytest.raises(ValueError, match="positive definite"):
        inverse_hessian_factor(torch.zeros(16, 16), 0.01)


def test_value_error_names_the_largest_damp_tried():
    """Eight attempts from damp=0.01: 0.01, 0.1, ..., 1e5 — a warning for each of the seven retries,
    then the error, naming the largest damp tried (not 1e6, which was never tried)."""
    with pytest.warns(UserWarning) as record, pytest.raises(ValueError) as info:
        inverse_hessian_factor(torch.zeros(16, 16), 0.01)
    assert len(record) == 7
    assert all("retrying" in str(r.message) for r in record)
    assert "damp=100000" in str(info.value) or "damp=1e+05" in str(info.value), str(info.value)
    assert "1e+06" not in str(info.value) and "1e+06" not in str(record[-1].message)


# ----------------------------------------------------------------------------------------------
# The stored layer: g_idx and static groups
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("symmetric", [True, False])
def test_act_order_layer_dequantizes_with_consistent_g_idx(symmetric):
    W, H, X = problem(("gidx", symmetric), rows=48, n=128, tokens=512)
    cfg = GPTQ(bits=4, group_size=32, symmetric=symmetric, act_order=True)
    layer = cfg.layer_from_hessian(W, None, H)
    assert isinstance(layer, IntWeightLinear) and layer.act_order and layer.g_idx is not None
    ref = reference_gptq(W, H, 4, 32, symmetric, act_order=True)
    assert torch.equal(layer.g_idx.long(), ref.g_idx)
    assert torch.bincount(layer.g_idx.long()).tolist() == [32] * 4  # 32 columns per group
    codes = layer.codes()
    ok = [i for i in range(W.shape[0]) if i not in divergent_rows(codes, ref)]
    assert len(ok) >= W.shape[0] - 2
    Wq = layer.dequantize_weight()
    torch.testing.assert_close(Wq[ok].double(), ref.dq[ok], rtol=2e-6, atol=1e-6 * ref.dq.abs().max().item())
    # the forward gathers x into the stored group order: the same products summed in another order, so to fp32's
    # worst-case bound for a K-term sum (K · 2^-24), against float64
    want = F.linear(X.double(), Wq.double())
    assert ((layer(X).double() - want).norm() / want.norm()).item() <= W.shape[1] * 2**-24
    # the index matters: the same codes read with contiguous groups give another weight
    contiguous = intfmt.dequantize(codes, layer.scale, layer.zero, "group", 32)
    assert (contiguous - Wq).abs().max() > 0.1 * Wq.abs().max()


def _act_order_layer(n, k, g, bits, gen, symmetric=False):
    """Codes chosen elsewhere with a permuted act-order g_idx (every group g columns, the last the rest)."""
    groups = -(-k // g)
    hi = 2**bits
    codes = torch.randint(0, hi, (n, k), generator=gen, dtype=torch.int16) - (hi // 2 if symmetric else 0)
    zero = None if symmetric else torch.randint(0, hi, (n, groups), generator=gen, dtype=torch.uint8)
    scale = torch.rand(n, groups, generator=gen) * 0.1 + 0.01
    g_idx = (torch.arange(k) // g)[torch.randperm(k, generator=gen)].to(torch.int32)
    layer = IntWeightLinear.from_codes(codes, scale, zero, torch.randn(n, generator=gen), g_idx=g_idx, bits=bits,
                                       granularity="group", group_size=g, symmetric=symmetric)
    return layer, codes, g_idx


@pytest.mark.parametrize("bits", [4, 8])
def test_act_order_codes_are_stored_in_group_order_and_given_back_in_input_order(bits):
    """The layer sorts the columns by group so the group-wise kernels take them: stored column j is in group
    j // group_size; g_idx, codes() and the weight are the caller's, in input-column order."""
    gen = make_gen("group-order", bits)
    layer, codes, g_idx = _act_order_layer(24, 200, 64, bits, gen, symmetric=bits == 8)
    assert torch.equal(layer.g_idx, g_idx) and torch.equal(layer.codes(), codes)
    stored = unpack(layer.qweight, bits, 200)
    assert torch.equal(g_idx[layer.perm.long()].long(), torch.arange(200) // 64)  # groups contiguous in the storage
    assert torch.equal(stored.to(torch.int16) - (2 ** (bits - 1) if bits == 8 else 0), codes[:, layer.perm.long()])
    w = intfmt.dequantize(codes, layer.scale, layer.zero, "group", 64, torch.float64, g_idx)
    assert torch.equal(layer.dequantize_weight(torch.float64), w)


@pytest.mark.parametrize("m", [1, 16, 300])
def test_act_order_forward_matches_float64_on_the_kernels_device(m):
    """On CUDA the gathered x goes through the group-wise kernels (the word GEMV at one token, the swapped MMA kernel,
    dequantize + cuBLAS); elsewhere through the reference. Bound: 1e-2, the issue's for every kernel."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    gen = make_gen("act-forward", m)
    layer, codes, g_idx = _act_order_layer(192, 512, 128, 4, gen)
    x = torch.randn(m, 512, generator=gen)
    want = x.double() @ layer.dequantize_weight(torch.float64).t() + layer.bias.double()
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    layer = layer.to(device)
    out = layer(x.to(device, dtype)).cpu().double()
    assert ((out - want).norm() / want.norm()).item() <= 1e-2
    # compiled, x is gathered before the op instead (where Inductor fuses it): the same answer
    compiled = torch.compile(layer, backend="inductor" if device == "cuda" else "aot_eager", fullgraph=True)
    out = compiled(x.to(device, dtype)).cpu().double()
    assert ((out - want).norm() / want.norm()).item() <= 1e-2


def test_an_act_order_state_dict_saved_with_g_idx_loads_into_group_order():
    """State dicts from before the group-order layout hold g_idx and the codes in input-column order."""
    gen = make_gen("old-g-idx")
    layer, codes, g_idx = _act_order_layer(16, 96, 32, 4, gen)
    old = {"bias": layer.bias, "qweight": pack(codes.to(torch.uint8), 4), "scale": layer.scale, "zero": layer.zero, "g_idx": g_idx}
    back = IntWeightLinear(96, 16, True, **layer.config())
    back.load_state_dict(old)
    assert torch.equal(back.qweight, layer.qweight) and torch.equal(back.perm, layer.perm) and torch.equal(back.codes(), codes)
    bad = {**layer.state_dict(), "perm": torch.zeros(96, dtype=torch.int32)}  # a corrupt file: the kernels index x by it
    with pytest.raises(ValueError, match="perm must be a permutation of the 96 input columns"):
        back.load_state_dict(bad)


def test_a_g_idx_with_unequal_groups_is_refused():
    codes = torch.randint(0, 16, (4, 64), dtype=torch.int16)
    g_idx = torch.zeros(64, dtype=torch.int32)
    g_idx[40:] = 1  # groups of 40 and 24 columns, not 32
    with pytest.raises(ValueError, match="g_idx must give each group group_size=32 columns"):
        IntWeightLinear.from_codes(codes, torch.ones(4, 2), torch.zeros(4, 2, dtype=torch.uint8), None, g_idx=g_idx, bits=4,
                                   granularity="group", group_size=32, symmetric=False)


def test_static_groups_have_no_g_idx_and_original_group_params():
    W, H, _ = problem("static", rows=48, n=128, tokens=512)
    cfg = GPTQ(bits=4, group_size=32, symmetric=False, act_order=True, static_groups=True)
    layer = cfg.layer_from_hessian(W, None, H)
    assert layer.g_idx is None and not layer.act_order
    for gi in range(4):  # parameters of the original, contiguous groups of the float weight
        s, z = intfmt.affine_params(W[:, gi * 32 : (gi + 1) * 32].float(), 4, False)
        assert torch.equal(layer.scale[:, gi], s) and torch.equal(layer.zero[:, gi].float(), z)
    ref = reference_gptq(W, H, 4, 32, False, act_order=True, static_groups=True)
    ok = [i for i in range(W.shape[0]) if i not in divergent_rows(layer.codes(), ref)]
    assert len(ok) >= W.shape[0] - 2
    torch.testing.assert_close(layer.dequantize_weight()[ok].double(), ref.dq[ok], rtol=2e-6, atol=1e-6 * ref.dq.abs().max().item())


def test_static_groups_needs_act_order():
    with pytest.raises(ValueError, match="static_groups"):
        GPTQ(static_groups=True)


# ----------------------------------------------------------------------------------------------
# HessianObserver
# ----------------------------------------------------------------------------------------------


def test_hessian_observer_running_mean_over_uneven_batches():
    gen = make_gen("observer")
    n = 48
    batches = [torch.randn(3, n, generator=gen), torch.randn(2, 9, n, generator=gen) * 3, torch.randn(1, n, generator=gen),
               torch.randn(4, 25, n, generator=gen) + 1.0]
    obs = HessianObserver(n, torch.device("cpu"))
    for b in batches:
        obs.update(b)
    X = torch.cat([b.reshape(-1, n) for b in batches]).double()
    assert obs.count == X.shape[0] == 3 + 18 + 1 + 100
    expect = 2 * X.t() @ X / X.shape[0]
    # float32 running mean over 4 updates: relative rounding ~ a few 1e-7 of the largest entry
    torch.testing.assert_close(obs.hessian.double(), expect, rtol=1e-5, atol=1e-6 * expect.abs().max().item())


# ----------------------------------------------------------------------------------------------
# Model level
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", sorted(MODELS))
def test_model_gptq_replaces_layers_and_beats_rtn(arch):
    """Held-out logits SQNR at least RTN's minus 0.3 dB for each seed (measured: GPTQ ahead by
    0.7-2.5 dB), and strictly above RTN's on the calibration ids themselves, which is what GPTQ
    minimises (block by block)."""
    for seed in range(2):
        base = MODELS[arch](seed)
        cal, held = token_ids((arch, seed, "cal")), token_ids((arch, seed, "held"), n=8)
        names = lowbit.select_modules(base, "all")
        g = lowbit.quantize(copy.deepcopy(base), lowbit.GPTQ(bits=4, group_size=32), "all", calibration=cal)
        r = lowbit.quantize(copy.deepcopy(base), lowbit.RTN(4, "group", 32, False), "all")
        for name in names:
            m = g.get_submodule(name)
            assert isinstance(m, IntWeightLinear) and m.bits == 4 and m.group_size == 32, name
        assert len(lowbit.api.quantized_layers(g)) == len(names)
        held_g, held_r = sqnr(logits(base, held), logits(g, held)), sqnr(logits(base, held), logits(r, held))
        cal_g, cal_r = sqnr(logits(base, cal), logits(g, cal)), sqnr(logits(base, cal), logits(r, cal))
        assert held_g >= held_r - 0.3, (seed, held_g, held_r)
        assert cal_g > cal_r, (seed, cal_g, cal_r)


@pytest.mark.parametrize("act_order", [False, True])
@pytest.mark.parametrize("arch", sorted(MODELS))
def test_model_gptq_save_load_identical(arch, act_order, tmp_path):
    model = MODELS[arch](3)
    lowbit.quantize(model, lowbit.GPTQ(bits=4, group_size=32, act_order=act_order), "all", calibration=token_ids((arch, "sl")))
    if act_order:
        assert any(m.g_idx is not None for m in lowbit.api.quantized_layers(model).values())
    ids = token_ids((arch, "sl-held"), n=4)
    before = logits(model, ids)
    lowbit.save(model, tmp_path)
    loaded = lowbit.load(tmp_path)
    assert torch.equal(logits(loaded, ids), before)


@pytest.mark.parametrize(
    "calibration",
    [None, "text", torch.randint(0, 256, (32,)), torch.randint(0, 256, (2, 4, 8)), torch.rand(4, 16), torch.randint(0, 256, (4, 16), dtype=torch.int32)],
    ids=["none", "str", "1d", "3d", "float", "int32"],
)
def test_model_gptq_bad_calibration(calibration):
    model = tiny_gpt2()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="calibration"):
        lowbit.quantize(model, lowbit.GPTQ(bits=4, group_size=32), "all", calibration=calibration)
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def recording_gptq(model, **kw):
    """A GPTQ whose observers also keep every input they see, by module name."""
    name_of = {id(m): n for n, m in model.named_modules()}
    seen: dict[str, list] = {}
    observers: dict[str, HessianObserver] = {}

    @dataclasses.dataclass(frozen=True)
    class RecordingGPTQ(GPTQ):
        def observer(self, module):
            obs = super().observer(module)
            observers[name_of[id(module)]] = obs
            inputs = seen.setdefault(name_of[id(module)], [])
            update = obs.update

            def record(x):
                inputs.append(x.detach().reshape(-1, x.shape[-1]).clone())
                update(x)

            obs.update = record
            return obs

    return RecordingGPTQ(**kw), seen, observers


@pytest.mark.parametrize("arch", sorted(MODELS))
def test_sequential_calibration_feeds_quantized_outputs(arch):
    """Block 1's first linear is calibrated on norm(block 0's QUANTIZED output), and lm_head on the
    final hidden states of the fully quantized body — not on the float model's activations."""
    base = MODELS[arch](5)
    model = copy.deepcopy(base)
    cal = token_ids((arch, "seq"), n=16)
    method, seen, observers = recording_gptq(model, bits=3, group_size=32)
    lowbit.quantize(model, method, "all", calibration=cal)
    if arch == "gpt2":
        first, norm_of = "transformer.h.1.attn.c_attn", lambda m: m.transformer.h[1].ln_1
    else:
        first, norm_of = "model.layers.1.self_attn.q_proj", lambda m: m.model.layers[1].input_layernorm
    head = "lm_head"
    got = torch.cat(seen[first])
    with torch.no_grad():
        quant_h = [model(cal[i : i + 8], output_hidden_states=True).hidden_states for i in range(0, len(cal), 8)]
        float_h = [base(cal[i : i + 8], output_hidden_states=True).hidden_states for i in range(0, len(cal), 8)]
        expect_q = torch.cat([norm_of(model)(hs[1]).reshape(-1, 64) for hs in quant_h])
        expect_f = torch.cat([norm_of(base)(hs[1]).reshape(-1, 64) for hs in float_h])
    tol = 1e-5 * expect_q.abs().max().item()
    torch.testing.assert_close(got, expect_q, rtol=1e-5, atol=tol)
    assert (got - expect_f).abs().max() > 100 * tol  # the float activations would be distinguishable
    # the Hessian GPTQ used is the one of those inputs
    X = expect_q.double()
    H = 2 * X.t() @ X / X.shape[0]
    torch.testing.assert_close(observers[first].hessian.double(), H, rtol=1e-5, atol=1e-6 * H.abs().max().item())
    # lm_head saw the final hidden states of the quantized body
    got_head = torch.cat(seen[head])
    expect_head = torch.cat([hs[-1].reshape(-1, 64) for hs in quant_h])
    torch.testing.assert_close(got_head, expect_head, rtol=1e-5, atol=1e-5 * expect_head.abs().max().item())


@pytest.mark.parametrize("arch", sorted(MODELS))
def test_device_argument_cpu(arch):
    base = MODELS[arch](7)
    cal = token_ids((arch, "dev"))
    a = lowbit.quantize(copy.deepcopy(base), lowbit.GPTQ(bits=4, group_size=32), "all", calibration=cal, device="cpu")
    b = lowbit.quantize(copy.deepcopy(base), lowbit.GPTQ(bits=4, group_size=32), "all", calibration=cal)
    assert all(t.device.type == "cpu" for t in [*a.parameters(), *a.buffers()])
    ids = token_ids((arch, "dev-held"), n=4)
    assert torch.equal(logits(a, ids), logits(b, ids))
