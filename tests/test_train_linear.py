"""Training linears: each precision's three matmuls against the float64 layer (gradients included),
stochastic rounding's unbiasedness, and `convert` on real HF models."""

import copy
import math

import pytest
import torch

import lowbit.train as T
from lowbit.formats import sqnr
from lowbit.train.linear import quantized_matmul

from tiny_models import make_gen, tiny_gpt2, tiny_llama, train_losses

pytestmark = pytest.mark.usefixtures("one_thread")

# SQNR floors (dB), derived for Gaussian operands with per-row scales over ~256 values (absmax ≈ 3σ):
# int8: step Δ = 3σ/127, noise Δ²/12 → 10·log10(12·127²/9) ≈ 43 dB per operand, ~40 dB for the product
# of two; floor 35. FP8 E4M3 (3 mantissa bits, relative rms error ≈ 2⁻⁴/√3): ~29 dB per operand, ~26 for
# the product; floor 22. E5M2 gradients (2 bits): ~23 dB per operand, ~22 with an E4M3 partner; floor 18.
FLOORS = {"int8": (35, 35), "fp8": (22, 18)}  # (forward, gradients)


def float64_grads(lin, x, g):
    w, b = lin.weight.detach().double().requires_grad_(), lin.bias.detach().double().requires_grad_()
    xd = x.detach().double().requires_grad_()
    y = xd @ w.t() + b
    y.backward(g.double())
    return y.detach(), xd.grad, w.grad, b.grad


@pytest.mark.parametrize("precision", list(T.PRECISIONS))
def test_three_matmuls_against_float64(precision):
    gen = make_gen("train", precision)
    lin = torch.nn.Linear(256, 192)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(192, 256, generator=gen) * 0.05)
        lin.bias.copy_(torch.randn(192, generator=gen))
    x = torch.randn(4, 32, 256, generator=gen, requires_grad=True)
    g = torch.randn(4, 32, 192, generator=gen)
    ref_y, ref_x, ref_w, ref_b = float64_grads(lin, x, g)
    q = T.QuantTrainLinear(256, 192, recipe=T.recipe_for(precision))
    q.load_state_dict(lin.state_dict())
    y = q(x)
    y.backward(g)
    recipe = q.recipe
    for kind, got, ref, role in [(recipe.forward, y, ref_y, 0), (recipe.grad_input, x.grad, ref_x, 1), (recipe.grad_weight, q.weight.grad, ref_w, 1)]:
        if kind == "bf16":  # the unquantized matmul in float32
            torch.testing.assert_close(got.double(), ref, rtol=1e-4, atol=1e-4)
        else:
            assert sqnr(ref, got) > FLOORS[kind][role], (precision, kind, role, sqnr(ref, got))
    torch.testing.assert_close(q.bias.grad.double(), ref_b, rtol=1e-5, atol=1e-5)  # bias grad is never quantized


def test_stochastic_rounding_of_gradients_is_unbiased():
    gen = make_gen("sr")
    g = torch.randn(64, 96, generator=gen)
    w = torch.randn(96, 128, generator=gen)
    recipe = T.recipe_for("int8", stochastic_rounding=True)
    nearest = T.recipe_for("int8")
    # the exact product with w rounded to nearest (w is never stochastically rounded): SR's expectation
    from lowbit.formats import int as intfmt

    wq = intfmt.quantize(w.t(), 8, granularity="token").dequantize().t()
    target = g.double() @ wq.double()
    torch.manual_seed(0)
    draws = torch.stack([quantized_matmul(g, w, "int8", recipe, True, torch.float32).double() for _ in range(400)])
    one = (draws[0] - target).norm()
    mean = (draws.mean(0) - target).norm()
    assert mean < one / 10  # noise averages out as 1/√400 = 1/20 for an unbiased rounding
    biased = (quantized_matmul(g, w, "int8", nearest, True, torch.float32).double() - target).norm()
    assert biased > 3 * mean  # round-to-nearest's error is deterministic: averaging cannot remove it


@pytest.mark.parametrize("build", [tiny_gpt2, tiny_llama], ids=["gpt2", "llama"])
def test_convert_replaces_all_but_lm_head_and_keeps_the_function(build):
    model = build()
    ids = torch.randint(0, 256, (2, 16), generator=make_gen("convert", build.__name__))
    with torch.no_grad():
        ref = model(ids).logits
    bf16 = T.convert(copy.deepcopy(model), "bf16")
    layers = [n for n, m in bf16.named_modules() if isinstance(m, T.QuantTrainLinear)]
    assert layers and not any(n.endswith("lm_head") for n in layers)
    with torch.no_grad():
        torch.testing.assert_close(bf16(ids).logits, ref, rtol=1e-4, atol=1e-4)
        assert sqnr(ref, T.convert(copy.deepcopy(model), "int8")(ids).logits) > 25


@pytest.mark.parametrize("precision", ["int8", "fp8-rowwise"])
def test_a_few_steps_lower_the_loss(precision):
    model = T.convert(tiny_llama(seed=1), precision, stochastic_rounding=precision == "int8")
    ids = torch.randint(0, 256, (8, 32), generator=make_gen("steps", precision))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = train_losses(model, ids, opt, 15)
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0] - 0.5


def test_bad_precision_lists_the_valid_ones():
    with pytest.raises(ValueError, match="int8-fwd-gi"):
        T.convert(tiny_gpt2(), "int4")
    with pytest.raises(ValueError, match="forward"):
        T.Recipe(forward="int4")


@pytest.mark.parametrize("precision", ["int8", "fp8-rowwise"])
def test_compiles_with_fullgraph_and_matches_eager(precision):
    gen = make_gen("compile", precision)
    q = T.QuantTrainLinear(64, 32, recipe=T.recipe_for(precision))
    x = torch.randn(8, 64, generator=gen, requires_grad=True)
    eager = q(x)
    eager.sum().backward()
    gx, gw = x.grad.clone(), q.weight.grad.clone()
    x.grad, q.weight.grad = None, None
    compiled = torch.compile(q, backend="aot_eager", fullgraph=True)(x)
    compiled.sum().backward()
    torch.testing.assert_close(compiled, eager)
    torch.testing.assert_close(x.grad, gx)
    torch.testing.assert_close(q.weight.grad, gw)


@pytest.mark.parametrize("precision", ["bf16", "int8", "int8-fwd", "fp8-rowwise"])
def test_autocast_runs_the_matmuls_in_its_dtype(precision):
    """Like nn.Linear under autocast: float32 inputs become bf16 activations and outputs, while the
    float32 master weight keeps a float32 gradient."""
    gen = torch.Generator().manual_seed(3)
    layer = T.QuantTrainLinear(64, 48, recipe=T.recipe_for(precision))
    x = torch.randn(4, 10, 64, generator=gen, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(x)
    assert y.dtype == torch.bfloat16
    y.float().square().sum().backward()
    assert layer.weight.grad.dtype == torch.float32 and x.grad.dtype == torch.float32
    ref = torch.nn.functional.linear(x.detach().double(), layer.weight.detach().double(), layer.bias.detach().double())
    assert ((y.double() - ref).norm() / ref.norm()).item() < 0.1  # bf16 / int8 / fp8 rounding, far from a wrong answer


def int8_path_as_before(x2, w, bias, g2, recipe):
    """The INT8 linear as it was: each matmul quantizes its operands itself, rows of A and rows of Bᵀ
    (transposed views for dy, W and x in the backward), then the exact scaled INT8 matmul."""
    from lowbit.ops import quantize_rows
    from lowbit.ops.int8 import scaled_int8_mm_reference

    def mm(a, b, kind):  # a [M, K] @ b [K, N] as quantized_matmul did
        if kind == "bf16":
            return a.to(x2.dtype) @ b.to(x2.dtype)
        (qa, sa), (qb, sb) = quantize_rows(a), quantize_rows(b.t())
        return scaled_int8_mm_reference(qa, qb.t(), sa, sb, None, x2.dtype)

    y = mm(x2, w.t(), recipe.forward) + bias.to(x2.dtype)
    return y, mm(g2, w, recipe.grad_input), mm(g2.t(), x2, recipe.grad_weight).to(w.dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("precision", ["int8", "int8-fwd-gi", "int8-fwd"])
def test_int8_linear_is_bit_identical_to_quantizing_per_matmul(precision, dtype):
    """Quantizing each operand once for rows and columns, and saving int8 codes for the backward,
    changes nothing: outputs and gradients equal the per-matmul path bit for bit (nearest rounding)."""
    gen = make_gen("int8-identical", precision, str(dtype))
    layer = T.QuantTrainLinear(40, 24, recipe=T.recipe_for(precision))
    with torch.no_grad():
        layer.weight.copy_(torch.randn(24, 40, generator=gen) * 0.1)
        layer.bias.copy_(torch.randn(24, generator=gen))
    x = (torch.randn(3, 7, 40, generator=gen) * torch.rand(3, 7, 1, generator=gen) * 4).to(dtype).requires_grad_()
    g = torch.randn(3, 7, 24, generator=gen).to(dtype)
    y = layer(x)
    y.backward(g)
    ref_y, ref_gx, ref_gw = int8_path_as_before(x.detach().reshape(-1, 40), layer.weight.detach(), layer.bias.detach(), g.reshape(-1, 24), layer.recipe)
    assert y.dtype == dtype and torch.equal(y, ref_y.reshape(3, 7, 24))
    assert torch.equal(x.grad, ref_gx.reshape(3, 7, 40))
    assert layer.weight.grad.dtype == torch.float32 and torch.equal(layer.weight.grad, ref_gw)


def test_fp8_rowwise_linear_is_bit_identical_to_quantizing_per_matmul():
    """FP8 row-wise takes the codes path (rows and columns from one op, column codes saved): outputs and
    gradients equal quantizing each operand in each matmul (`quantized_matmul`) bit for bit."""
    gen = make_gen("fp8-identical")
    recipe = T.recipe_for("fp8-rowwise")
    layer = T.QuantTrainLinear(48, 32, recipe=recipe)
    x = (torch.randn(2, 9, 48, generator=gen) * torch.rand(2, 9, 1, generator=gen) * 4).bfloat16().requires_grad_()
    g = torch.randn(2, 9, 32, generator=gen).bfloat16()
    y = layer(x)
    y.backward(g)
    x2, w, g2 = x.detach().reshape(-1, 48), layer.weight.detach(), g.reshape(-1, 32)
    ref_y = quantized_matmul(x2, w.t(), "fp8", recipe, False, x.dtype) + layer.bias.detach().to(x.dtype)
    assert torch.equal(y.reshape(-1, 32), ref_y)
    assert torch.equal(x.grad.reshape(-1, 48), quantized_matmul(g2, w, "fp8", recipe, True, x.dtype))
    assert torch.equal(layer.weight.grad, quantized_matmul(g2.t(), x2, "fp8", recipe, True, x.dtype).float())


@pytest.mark.parametrize("precision", ["int8", "fp8-rowwise"])
def test_compiled_linears_sharing_an_input_quantize_it_once(precision):
    """q/k/v-like linears on one input: Inductor's partitioner (min-cut) merges their opaque input-quantizing
    calls into one in the forward graph (three without its common-subexpression pass), and the compiled
    results equal eager's."""
    from functorch.compile import make_boxed_func, min_cut_rematerialization_partition
    from torch._dynamo.backends.common import aot_autograd

    gen = make_gen("shared-input", precision)
    layers = torch.nn.ModuleList(T.QuantTrainLinear(16, n, recipe=T.recipe_for(precision)) for n in (32, 24, 24))
    x = torch.randn(10, 16, generator=gen, requires_grad=True)

    def f(x):
        return torch.cat([lin(x) for lin in layers], dim=-1)

    def run(fn):
        x.grad = None
        for lin in layers:
            lin.weight.grad = None
        out = fn(x)
        out.sum().backward()
        return [out.detach(), x.grad.clone()] + [lin.weight.grad.clone() for lin in layers]

    def input_quantizations(cse: bool) -> tuple[int, list]:
        graphs = []

        def forward_compiler(gm, _):
            graphs.append(gm)
            return make_boxed_func(gm.forward)

        backend = aot_autograd(fw_compiler=forward_compiler, bw_compiler=lambda gm, _: make_boxed_func(gm.forward),
                               partition_fn=min_cut_rematerialization_partition)
        torch._dynamo.reset()
        with torch._functorch.config.patch(cse=cse):
            results = run(torch.compile(f, backend=backend, fullgraph=True))
        op = torch.ops.lowbit.train_codes.default  # the weights' quantizations too: counted are x's
        return sum(n.target is op and tuple(n.args[0].meta["val"].shape) == tuple(x.shape) for g in graphs for n in g.graph.nodes), results

    for stochastic in (False, True):
        torch.library.opcheck(torch.ops.lowbit.train_codes.default, (x.detach(), "int8" if precision == "int8" else "e4m3", stochastic and precision == "int8"))
    eager = run(f)
    merged, compiled = input_quantizations(cse=True)
    assert merged == 1 and input_quantizations(cse=False)[0] == 3
    for a, b in zip(compiled, eager):
        torch.testing.assert_close(a, b)


def test_int8_forward_saves_int8_codes_not_the_activations():
    """With INT8 grad-weight and grad-input, the backward's operands are saved as int8 column codes
    (and float32 scales): no float copy of x or W is kept."""
    layer = T.QuantTrainLinear(40, 24, recipe=T.recipe_for("int8"))
    x = torch.randn(21, 40, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        layer(x)
    assert sorted((tuple(t.shape), t.dtype) for t in saved) == sorted(
        [((40, 21), torch.int8), ((40,), torch.float32), ((40, 24), torch.int8), ((40,), torch.float32)]
    )


def test_int8_linear_stochastic_gradients_are_unbiased():
    """dy is quantized once (rows for grad-input, columns for grad-weight) with stochastic rounding:
    both gradients average, over draws, to dy times the nearest-rounded other operand."""
    from lowbit.formats import int as intfmt

    gen = make_gen("linear-sr")
    layer = T.QuantTrainLinear(48, 40, bias=False, recipe=T.recipe_for("int8", stochastic_rounding=True))
    x = torch.randn(32, 48, generator=gen, requires_grad=True)
    g = torch.randn(32, 40, generator=gen)
    w = layer.weight.detach()
    # x per input channel and W per input channel, rounded to nearest: SR's expectations
    target_x = g.double() @ intfmt.quantize(w.t(), 8, granularity="token").dequantize().t().double()
    target_w = g.t().double() @ intfmt.quantize(x.detach().t(), 8, granularity="token").dequantize().t().double()
    torch.manual_seed(0)
    gx, gw = [], []
    for _ in range(300):
        x.grad, layer.weight.grad = None, None
        layer(x).backward(g)
        gx.append(x.grad.double())
        gw.append(layer.weight.grad.double())
    for draws, target in ((torch.stack(gx), target_x), (torch.stack(gw), target_w)):
        assert (draws[0] - draws[1]).abs().max() > 0  # fresh draws every step
        assert (draws.mean(0) - target).norm() < (draws[0] - target).norm() / 8  # 1/√300 ≈ 1/17 if unbiased
