"""The fused gated MLP (`lowbit.train.mlp`): on the reference path its forward equals, to the bit, the three unfused
QuantTrainLinears with torch's SiLU between them, and its gradients agree to within a code step (torch's SiLU
backward rounds its fp32 products in its own order, which can move a gradient code by one); `convert` fuses exactly
the MLPs whose linears share one codes format; the state dict is unchanged; compiled equals eager. The kernels'
producers are checked in test_ops_rows_cols.py."""

import copy

import pytest
import torch

from lowbit import train as T
from lowbit.train import mlp as M
from tiny_models import make_gen, tiny_llama, token_ids


def _run(model, ids):
    for p in model.parameters():
        p.grad = None
    out = model(ids).logits
    (out.float() ** 2).mean().backward()
    return [out.detach()] + [p.grad.clone() for p in model.parameters() if p.grad is not None]


@pytest.mark.parametrize("precision", ["int8", "fp8-rowwise"])
def test_fused_mlp_equals_the_unfused_linears(precision):
    model = tiny_llama(seed=3)
    fused = T.convert(copy.deepcopy(model), precision, fuse_mlp=True)
    unfused = T.convert(copy.deepcopy(model), precision)
    assert all(type(layer.mlp) is M.QuantTrainMLP for layer in fused.model.layers)
    assert not any(type(m) is M.QuantTrainMLP for m in unfused.modules())
    assert fused.state_dict().keys() == unfused.state_dict().keys() == model.state_dict().keys()
    ids = token_ids(("mlp", precision), n=2, length=12)
    got, want = _run(fused, ids), _run(unfused, ids)
    assert len(got) == len(want) == 1 + len(list(model.parameters()))  # the output and every parameter's gradient
    assert torch.equal(got[0], want[0])
    for a, b in zip(got[1:], want[1:]):  # one int8 step is 2^-7 of a row's absmax; E4M3's is 2^-3 of a value
        assert ((a - b).norm() / b.norm()).item() < (2**-7 if precision == "int8" else 2**-5)


def test_fused_mlp_stochastic_gradients_are_fresh_draws():
    """With stochastic rounding the gradients' codes are fresh draws each backward (two passes differ), each within
    the quantization noise of nearest rounding's gradient; the forward is not drawn."""
    gen = make_gen("mlp-sr")
    lin = [T.QuantTrainLinear(32, 64, False, recipe=T.recipe_for("int8", True)) for _ in range(2)]
    lin.append(T.QuantTrainLinear(64, 32, False, recipe=T.recipe_for("int8", True)))
    for layer in lin:
        torch.nn.init.normal_(layer.weight, std=0.2, generator=gen)
    mlp = M.QuantTrainMLP(*lin)
    nearest = copy.deepcopy(mlp)
    for layer in (nearest.gate_proj, nearest.up_proj, nearest.down_proj):
        layer.recipe = T.recipe_for("int8")
    x = torch.randn(48, 32, generator=gen, requires_grad=True)
    g = torch.randn(48, 32, generator=gen)

    def run(m):
        x.grad = None
        y = m(x)
        y.backward(g)
        return y.detach(), x.grad.clone(), m.gate_proj.weight.grad.clone()

    (y1, dx1, dw1), (y2, dx2, dw2), (y0, dx0, dw0) = run(mlp), run(mlp), run(nearest)
    assert torch.equal(y1, y2) and torch.equal(y1, y0)
    assert not torch.equal(dx1, dx2) and not torch.equal(dw1, dw2)
    for a, b in ((dx1, dx0), (dw1, dw0)):
        assert ((a - b).norm() / b.norm()).item() < 0.1  # a few int8 steps of noise, not a wrong gradient


def test_convert_fuses_only_mlps_on_one_codes_format():
    for precision, fused in [("int8", True), ("fp8-rowwise", True), ("int8-fwd", False), ("int8-fwd-gi", False),
                             ("fp8-tensorwise", False), ("bf16", False), ("int8-weight", False)]:
        model = T.convert(tiny_llama(), precision, fuse_mlp=True)
        assert (type(model.model.layers[0].mlp) is M.QuantTrainMLP) == fused, precision
    assert type(T.convert(tiny_llama(), "int8").model.layers[0].mlp) is not M.QuantTrainMLP  # off by default
    model = T.convert(tiny_llama(), "int8")
    model.model.layers[0].mlp.gate_proj = torch.nn.Linear(64, 128, bias=False)  # one MLP with a plain linear
    assert M.fuse_mlps(model) == ["model.layers.1.mlp"]
    lin = [T.QuantTrainLinear(8, 16, False, recipe=T.recipe_for("int8")), T.QuantTrainLinear(8, 16, True, recipe=T.recipe_for("int8")),
           T.QuantTrainLinear(16, 8, False, recipe=T.recipe_for("int8"))]
    with pytest.raises(ValueError, match="bias-free QuantTrainLinears"):
        M.QuantTrainMLP(*lin)


def test_fused_mlp_ops_pass_opcheck_and_compile_equals_eager():
    gen = make_gen("mlp-opcheck")
    g, u, dh = (torch.randn(12, 16, generator=gen) for _ in range(3))
    for fmt in ("int8", "e4m3"):
        torch.library.opcheck(torch.ops.lowbit.train_silu_mul_codes.default, (g, u, fmt))
        torch.library.opcheck(torch.ops.lowbit.train_silu_mul_grad_codes.default, (dh, g, u, fmt, False))
    model = T.convert(tiny_llama(seed=5, layers=1), "int8", fuse_mlp=True)
    ids = token_ids("mlp-compile", n=2, length=8)
    eager = _run(model, ids)
    torch._dynamo.reset()
    compiled_model = copy.copy(model)
    compiled_model.forward = torch.compile(model.forward, fullgraph=False)
    for a, b in zip(_run(compiled_model, ids), eager):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the Triton producers and matmuls: a GPU")
@pytest.mark.parametrize("precision", ["int8", "fp8-rowwise"])
def test_fused_mlp_on_the_gpu_agrees_with_the_unfused_linears(precision):
    """On the GPU the producers run inside the Triton passes (Triton's sigmoid, not torch's: the last bits of an
    fp32 value can differ, so a code can move by one step): outputs and gradients within a code step."""
    model = tiny_llama(seed=4).cuda()
    fused = T.convert(copy.deepcopy(model), precision, fuse_mlp=True)
    unfused = T.convert(copy.deepcopy(model), precision)
    ids = token_ids(("mlp-gpu", precision), n=4, length=64).cuda()
    for a, b in zip(_run(fused, ids), _run(unfused, ids)):
        assert ((a - b).norm() / b.norm()).item() < (2**-7 if precision == "int8" else 2**-5)
