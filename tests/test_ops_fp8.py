"""FP8 scaled matmul, fused per-token FP8 quantization, tile-scaled INT8/FP8 matmul and the FP8 W8A8
layer: Triton kernels in the interpreter on CPU (on the GPU where there is one) against
`lowbit.formats` and float64 references on fresh random inputs of awkward shapes."""

import math

import pytest
import torch

import lowbit
from lowbit.formats import fp, sqnr
from lowbit.layers import LAYER_CLASSES, FP8Linear
from lowbit.ops import fp8 as f8
from lowbit.ops import tile_scaled as ts
from lowbit.ops.weight_only import VALUES_MAX_M

pytestmark = pytest.mark.skipif(ts.triton is None, reason="needs triton")

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
CUDA = torch.cuda.is_available()
U32 = 2.0**-24  # unit roundoff of float32
UNIT = {torch.float32: U32, torch.float16: 2.0**-11, torch.bfloat16: 2.0**-8}


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    pass


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.uint8) if t.element_size() == 1 else t


# --------------------------------------------------------------------------- per-token FP8 quantization


@pytest.mark.parametrize("m,k", [(1, 16), (7, 100), (9, 300)])
def test_quantize_rows_fp8_equals_the_format_definition(m, k):
    gen = torch.Generator().manual_seed(m * 1000 + k)
    # rows spanning 9 decades, so codes hit E4M3's subnormals as well as its top binade
    x = torch.randn(m, k, generator=gen) * torch.logspace(-6, 3, m)[:, None]
    q, s = f8.quantize_rows_fp8_triton(x.to(DEVICE))
    q_ref, s_ref = fp.quantize_fp8(x, "e4m3", "token")
    assert q.dtype == torch.float8_e4m3fn and s.shape == (m, 1)
    assert torch.equal(s.cpu(), s_ref) and torch.equal(bits(q.cpu()), bits(q_ref))


def test_quantize_rows_fp8_rounds_every_grid_value_and_tie_like_torch():
    """Every finite E4M3 value, every midpoint (a tie: nearest even), and the floats next to each
    midpoint, in a row whose absmax is 448 (scale exactly 1): codes bit-equal torch's cast."""
    vals = torch.arange(256, dtype=torch.uint8).view(torch.float8_e4m3fn).float()
    vals = vals[~vals.isnan()].sort().values
    mids = (vals[1:] + vals[:-1]) / 2
    x = torch.cat([vals, mids, mids.nextafter(torch.tensor(1e9)), mids.nextafter(torch.tensor(-1e9)), torch.tensor([-0.0, 1e-45, -1e-45])])
    q, s = f8.quantize_rows_fp8_triton(x.reshape(1, -1).to(DEVICE))
    q_ref, s_ref = fp.quantize_fp8(x.reshape(1, -1), "e4m3", "token")
    assert s.item() == 1.0 == s_ref.item()
    assert torch.equal(bits(q.cpu()), bits(q_ref))


def test_quantize_rows_fp8_op_zero_rows_and_opcheck():
    x = torch.zeros(3, 32, device=DEVICE)
    q, s = f8.quantize_rows_fp8(x)
    assert torch.equal(q.float().cpu(), torch.zeros(3, 32)) and torch.isfinite(s).all() and (s > 0).all()
    torch.library.opcheck(f8.quantize_rows_fp8, (torch.randn(4, 48, device=DEVICE),))


# --------------------------------------------------------------------------- scaled FP8 matmul


def rand_fp8(*shape, gen):
    return (torch.randn(shape, generator=gen) * 64).to(torch.float8_e4m3fn).to(DEVICE)


def fp8_reference(a, b, sa, sb, bias=None):
    out = (a.double().cpu() @ b.double().cpu().t()) * sa.double().cpu().reshape(-1, 1) * sb.double().cpu().reshape(1, -1)
    return out if bias is None else out + bias.double().cpu()


@pytest.mark.parametrize("scaling", ["row", "tensor", "mixed"])
@pytest.mark.parametrize("m,n,k", [(1, 40, 64), (17, 33, 77), (50, 64, 96)])
def test_scaled_fp8_mm_matches_float64(scaling, m, n, k):
    gen = torch.Generator().manual_seed(hash((scaling, m, n, k)) % 2**31)
    a, b = rand_fp8(m, k, gen=gen), rand_fp8(n, k, gen=gen)
    sa = ((torch.rand(m, 1, generator=gen) + 0.1) / 448).to(DEVICE)
    sb = ((torch.rand(n, 1, generator=gen) + 0.1) / 448).to(DEVICE)
    if scaling == "tensor":
        sa, sb = sa[0, 0], sb[:1]
    elif scaling == "mixed":
        sb = sb[0, 0]
    bias = torch.randn(n, generator=gen).to(DEVICE)
    out = f8.scaled_fp8_mm(a, b, sa, sb, bias, torch.float32)
    assert out.shape == (m, n) and out.dtype == torch.float32 and torch.isfinite(out).all()
    ref = fp8_reference(a, b, sa, sb, bias)
    # products of E4M3 values are exact in float32; the sums and the epilogue round (bf16 out on the GPU path)
    tol = 1e-2 if f8.scaled_mm_takes(a, b) else 1e-5
    assert ((out.cpu().double() - ref).norm() / ref.norm()).item() <= tol


def test_scaled_fp8_mm_errors_and_opcheck():
    gen = torch.Generator().manual_seed(5)
    a, b = rand_fp8(20, 32, gen=gen), rand_fp8(24, 32, gen=gen)
    sa, sb = torch.rand(20, 1).to(DEVICE), torch.rand(24, 1).to(DEVICE)
    with pytest.raises(ValueError, match="float8"):
        f8.scaled_fp8_mm(a.float(), b, sa, sb)
    with pytest.raises(ValueError, match="agree on K"):
        f8.scaled_fp8_mm(a, b[:, :16], sa, sb)
    with pytest.raises(ValueError, match="scale_a"):
        f8.scaled_fp8_mm(a, b, sa[:3], sb)
    with pytest.raises(ValueError, match="bias"):
        f8.scaled_fp8_mm(a, b, sa, sb, torch.zeros(5, device=DEVICE))
    # test_schema compares inputs with arithmetic that fp8 tensors do not implement: the other checks
    utils = ("test_autograd_registration", "test_faketensor", "test_aot_dispatch_dynamic")
    torch.library.opcheck(f8.scaled_fp8_mm, (a, b, sa, sb, None, torch.float32), test_utils=utils)


@pytest.mark.skipif(not CUDA, reason="torch._scaled_mm's rules are the GPU's")
def test_scaled_fp8_mm_uses_scaled_mm_where_it_can_and_falls_back_elsewhere():
    gen = torch.Generator().manual_seed(6)
    if torch.cuda.get_device_capability() < (8, 9):
        pytest.skip("needs an FP8 GPU")
    for m, n, k, takes in [(1, 4096, 4096, True), (17, 48, 64, True), (300, 1024, 768, True), (33, 40, 72, False), (32, 40, 64, False)]:
        a, b = rand_fp8(m, k, gen=gen), rand_fp8(n, k, gen=gen)
        sa = ((torch.rand(m, 1, generator=gen) + 0.1) / 448).cuda()
        sb = ((torch.rand(n, 1, generator=gen) + 0.1) / 448).cuda()
        assert f8.scaled_mm_takes(a, b) == takes
        for dtype in (torch.bfloat16, torch.float16):
            out = f8.scaled_fp8_mm(a, b, sa, sb, None, dtype)
            ref = fp8_reference(a, b, sa, sb)
            assert out.dtype == dtype and ((out.cpu().double() - ref).norm() / ref.norm()).item() < 5e-3


# --------------------------------------------------------------------------- tile-scaled quantizers


@pytest.mark.parametrize("fmt", ["int8", "e4m3"])
@pytest.mark.parametrize("m,k", [(1, 40), (5, 300), (3, 256)])
def test_quantize_tiles_triton_equals_reference(fmt, m, k):
    gen = torch.Generator().manual_seed(m * 7 + k)
    x = torch.randn(m, k, generator=gen) * torch.rand(m, k, generator=gen).pow(4) * 10  # tiles of unequal range
    q, s = ts.quantize_tiles_triton(x.to(DEVICE), fmt)
    q_ref, s_ref = ts.quantize_tiles_reference(x, fmt)
    assert s.shape == (m, math.ceil(k / 128)) and q.shape == (m, k)
    assert torch.equal(s.cpu(), s_ref) and torch.equal(bits(q.cpu()), bits(q_ref))
    # the tiles really are independent: each tile's own absmax lands on the format's max
    top = 127 if fmt == "int8" else 448
    for t in range(s.shape[1]):
        assert q_ref[:, t * 128 : (t + 1) * 128].float().abs().amax(dim=1).eq(top).all()


@pytest.mark.parametrize("fmt", ["int8", "e4m3"])
def test_quantize_blocks_scales_and_round_trip(fmt):
    gen = torch.Generator().manual_seed(8)
    w = torch.randn(200, 300, generator=gen)
    w[:128, :128] *= 100  # one loud block must not swamp the others
    q, s = ts.quantize_blocks(w, fmt)
    assert q.shape == w.shape and s.shape == (2, 3)
    top = 127 if fmt == "int8" else 448
    for i in range(2):
        for j in range(3):
            blk = w[i * 128 : (i + 1) * 128, j * 128 : (j + 1) * 128]
            assert s[i, j].item() == pytest.approx(blk.abs().max().item() / top, rel=1e-6)
    deq = ts.dequantize_tiles(q, s, rows_per_scale=128)
    assert sqnr(w, deq) > (35 if fmt == "int8" else 25)
    with pytest.raises(ValueError, match="fmt"):
        ts.quantize_blocks(w, "e5m2")


def test_quantize_tiles_op_opcheck():
    torch.library.opcheck(ts.quantize_tiles, (torch.randn(3, 200, device=DEVICE), "e4m3", 128))
    torch.library.opcheck(ts.quantize_tiles, (torch.randn(3, 200, device=DEVICE), "int8", 128))


# --------------------------------------------------------------------------- tile-scaled matmul


def tile_operands(fmt, m, n, k, layout, gen):
    """Codes and tile scales of random a [M, K] and w [N, K]; a and b as views of the given layout."""
    a = torch.randn(m, k, generator=gen) * torch.rand(m, k, generator=gen).pow(3) * 5
    w = torch.randn(n, k, generator=gen)
    qa, sa = ts.quantize_tiles_reference(a, fmt)
    qb, sb = ts.quantize_blocks(w, fmt)
    if layout in ("aT@b", "a@b"):
        qb = qb.t().contiguous().t()  # stored [K, N]: the grad-input / grad-weight layout
    if layout == "aT@b":
        qa = qa.t().contiguous().t()  # stored [K, M]
    return qa.to(DEVICE), qb.to(DEVICE), sa.to(DEVICE), sb.to(DEVICE)


def tile_bound(qa, qb, sa, sb, bias, chunks, out_dtype):
    """(float64 reference, elementwise error bound). The kernel sums `chunks` fp32 terms
    p_j·sa·sb, each p_j a K-chunk's dot product: exact for int8 (|p_j| < 2^24), for FP8 in the
    interpreter a float32 sum of exact products. Each term takes two roundings and the running
    sum one per term, each ≤ u times a partial sum of |terms| ≤ S = Σ_k |a_k b_k|·sa·sb; the bias
    add one more, the cast to out_dtype u_out·|out|:  |out − ref| ≤ (chunks + 3)·u·(S + |bias|) + u_out·|ref|."""
    ea = ts.dequantize_tiles(qa.cpu(), sa.cpu()).double()
    eb = ts.dequantize_tiles(qb.cpu(), sb.cpu(), rows_per_scale=128).double()
    ref = ea @ eb.t() + (0 if bias is None else bias.double().cpu())
    s = ea.abs() @ eb.abs().t() + (0 if bias is None else bias.double().abs().cpu())
    return ref, (chunks + 3) * U32 * s * 1.01 + UNIT[out_dtype] * ref.abs() * 1.01 + 1e-300


@pytest.mark.parametrize("layout", ["a@bT", "a@b", "aT@b"])
@pytest.mark.parametrize("m,n,k", [(1, 40, 64), (19, 150, 300), (33, 130, 256)])
def test_tile_scaled_mm_int8_within_derived_bound(layout, m, n, k):
    gen = torch.Generator().manual_seed(hash((layout, m, n, k)) % 2**31)
    qa, qb, sa, sb = tile_operands("int8", m, n, k, layout, gen)
    bias = torch.randn(n, generator=gen).to(DEVICE)
    for dtype in (torch.float32, torch.float16):
        out = ts.tile_scaled_mm_triton(qa, qb, sa, sb, bias, dtype)
        assert out.dtype == dtype and out.shape == (m, n) and torch.isfinite(out).all()
        ref, bound = tile_bound(qa, qb, sa, sb, bias, math.ceil(k / 16), dtype)  # K-chunks are >= 16 wide
        err = (out.cpu().double() - ref).abs()
        assert (err <= bound).all(), (err / bound).max().item()
    # the torch reference path does the same arithmetic
    ref_out = ts.tile_scaled_mm_reference(qa.cpu(), qb.cpu(), sa.cpu(), sb.cpu(), bias.cpu(), torch.float32)
    assert (ref_out.double() - ref).abs().le(tile_bound(qa, qb, sa, sb, bias, math.ceil(k / 128), torch.float32)[1]).all()


@pytest.mark.parametrize("m,n,k", [(1, 40, 64), (19, 150, 300)])
def test_tile_scaled_mm_fp8(m, n, k):
    """In the interpreter FP8 tl.dot is a float32 numpy dot; on the GPU the tensor cores' FP8
    accumulation is less precise within a K-block, so there the check is a relative error."""
    gen = torch.Generator().manual_seed(m * 31 + n)
    qa, qb, sa, sb = tile_operands("e4m3", m, n, k, "a@bT", gen)
    if CUDA and torch.cuda.get_device_capability() < (8, 9):
        pytest.skip("FP8 tl.dot needs sm_89+")
    out = ts.tile_scaled_mm_triton(qa, qb, sa, sb, None, torch.float32)
    ref, bound = tile_bound(qa, qb, sa, sb, None, k, torch.float32)
    if CUDA:
        assert ((out.cpu().double() - ref).norm() / ref.norm()).item() < 1e-3
    else:
        assert ((out.double() - ref).abs() <= bound).all()


def test_tile_scaled_mm_writes_every_element_and_checks_arguments():
    gen = torch.Generator().manual_seed(9)
    a = torch.randint(-127, 128, (37, 140), dtype=torch.int8, generator=gen).to(DEVICE)
    b = torch.randint(-127, 128, (45, 140), dtype=torch.int8, generator=gen).to(DEVICE)
    sa, sb = torch.ones(37, 2, device=DEVICE), torch.ones(1, 2, device=DEVICE)
    out = ts.tile_scaled_mm_triton(a, b, sa, sb, None, torch.float32)
    assert torch.equal(out.cpu().double(), (a.cpu().long() @ b.cpu().long().t()).double())
    with pytest.raises(ValueError, match="must both be int8"):
        ts.tile_scaled_mm(a, b.to(torch.float8_e4m3fn) if not CUDA else b.float(), sa, sb)
    with pytest.raises(ValueError, match="scale_a"):
        ts.tile_scaled_mm(a, b, sa[:, :1], sb)
    with pytest.raises(ValueError, match="scale_b"):
        ts.tile_scaled_mm(a, b, sa, torch.ones(2, 2, device=DEVICE))
    torch.library.opcheck(ts.tile_scaled_mm, (a[:8], b[:8], sa[:8], sb, None, torch.float32))


# --------------------------------------------------------------------------- FP8 W8A8 layer


@pytest.mark.parametrize("seq", [5, 40])  # 10 and 80 tokens: either side of VALUES_MAX_M["fp8"] on CUDA
@pytest.mark.parametrize("granularity", ["channel", "tensor"])
def test_fp8_w8a8_layer_matches_float64_of_its_codes(granularity, seq):
    """2 × seq tokens: on CUDA up to VALUES_MAX_M["fp8"] of them take the weight-only kernels (x exact), beyond
    the FP8 matmul of per-token E4M3 activations; on CPU always the latter."""
    gen = torch.Generator().manual_seed(10)
    w, bias = torch.randn(48, 64, generator=gen) * 0.05, torch.randn(48, generator=gen)
    x = torch.randn(2, seq, 64, generator=gen)
    method = lowbit.FP8(granularity=granularity, activations="token")
    layer = method.layer(w, bias).to(DEVICE)
    out = layer(x.to(DEVICE))
    assert out.shape == (2, seq, 48) and out.dtype == torch.float32
    # float64 of exactly what the layer computed with: x itself or its per-token E4M3 codes, and the E4M3 weights
    x2 = x.reshape(-1, 64)
    if CUDA and x2.shape[0] <= VALUES_MAX_M["fp8"]:
        x_used, tol = x2.double(), 1e-5  # fp32 activations through fp32 sums
    else:
        xq, xs = fp.quantize_fp8(x2, "e4m3", "token")
        x_used = xq.double() * xs.double()
        tol = 1e-2 if f8.scaled_mm_takes(xq.to(DEVICE), layer.qweight) else 1e-6  # fast accumulation on the GPU
    ref = x_used @ layer.dequantize_weight(torch.float64).cpu().t() + bias.double()
    assert ((out.reshape(-1, 48).cpu().double() - ref).norm() / ref.norm()).item() < tol
    # and against the float layer: FP8 activations and weights, ~25 dB
    assert sqnr(x.reshape(-1, 64) @ w.t() + bias, out.reshape(-1, 48).cpu().float()) > 20
    # save/load: config names the option; a layer rebuilt from it computes the same
    cfg = layer.config()
    assert cfg["activations"] == "token"
    clone = LAYER_CLASSES["FP8Linear"](64, 48, True, **cfg).to(DEVICE)
    clone.load_state_dict(layer.state_dict())
    assert torch.equal(clone(x.to(DEVICE)), out)


def test_fp8_activation_option_is_checked():
    with pytest.raises(ValueError, match="activations"):
        lowbit.FP8(activations="tensor")
    with pytest.raises(ValueError, match="E4M3"):
        lowbit.FP8(fmt="e5m2", activations="token")
    with pytest.raises(ValueError, match="activations"):
        FP8Linear(16, 16, False, activations="dynamic")
    assert FP8Linear(16, 16, False).config()["activations"] == "none"  # weight-only stays the default
