"""INT8 weight-only training: int8 storage with no float master copy, exact gradients of the
stored weight, stochastic-rounding updates that keep sub-step updates in expectation."""

import pytest
import torch
import torch.nn.functional as F

import lowbit.train as T

from tiny_models import make_gen, tiny_gpt2, tiny_llama

pytestmark = pytest.mark.usefixtures("one_thread")


def test_forward_and_gradients_are_those_of_the_stored_weight():
    gen = make_gen("int8w")
    lin = torch.nn.Linear(96, 40)
    layer = T.Int8WeightLinear.from_float(lin.weight.detach(), lin.bias.detach())
    assert layer.qweight.dtype == torch.int8 and not any(p.shape == lin.weight.shape for p in layer.parameters())
    x = torch.randn(3, 7, 96, generator=gen, requires_grad=True)
    g = torch.randn(3, 7, 40, generator=gen)
    y = layer(x)
    y.backward(g)
    w = layer.dequantize_weight(torch.float64)
    xd, gd = x.detach().double().reshape(-1, 96), g.double().reshape(-1, 40)
    torch.testing.assert_close(y.double(), F.linear(x.double(), w, lin.bias.double()), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x.grad.double().reshape(-1, 96), gd @ w, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(layer.grad_weight.double(), gd.t() @ xd, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(layer.bias.grad.double(), gd.sum(0), rtol=1e-5, atol=1e-5)


def _layer_with_fixed_scales(rows=64, cols=128):
    """Every row's absmax is 1.0 in column 0, so every scale is 1/127 and stays so while column 0 has
    no gradient: the test then sees the rounding alone."""
    w = torch.rand(rows, cols, generator=make_gen("fixed")) * 1.6 - 0.8
    w[:, 0] = 1.0
    layer = T.Int8WeightLinear.from_float(w, None)
    grad = torch.ones(rows, cols)
    grad[:, 0] = 0.0
    return layer, grad


@pytest.mark.parametrize("rounding", ["stochastic", "nearest"])
def test_updates_smaller_than_a_step_survive_only_stochastic_rounding(rounding):
    layer, grad = _layer_with_fixed_scales()
    step = 1 / 127
    lr = 0.1 * step  # Adam's update with a constant gradient is lr per element: a tenth of a quantization step
    opt = T.Int8WeightAdamW([layer], lr=lr, rounding=rounding, generator=torch.Generator().manual_seed(0))
    before = layer.dequantize_weight()
    n = 50
    for _ in range(n):
        layer.grad_weight = grad.clone()
        opt.step()
    change = (layer.dequantize_weight() - before)[:, 1:]
    assert torch.equal(layer.scale, torch.full_like(layer.scale, step))
    if rounding == "nearest":
        assert torch.count_nonzero(change) == 0  # each update rounds straight back: training stalls
    else:
        # expected −n·lr per element; per-element variance ≤ n·step²/4, so the mean over 64·127 elements
        # has std ≤ √n·step/(2·√8128) ≈ 0.04·step, far inside 0.5·step of the expected −5·step
        assert abs(change.mean().item() - (-n * lr)) < 0.5 * step


def test_convert_int8_weight_trains_a_real_model():
    model = T.convert(tiny_llama(seed=1), "int8-weight")
    layers = [m for m in model.modules() if isinstance(m, T.Int8WeightLinear)]
    assert len(layers) == 2 * 7  # q, k, v, o, gate, up, down per block; lm_head excluded
    opt8 = T.Int8WeightAdamW(layers, lr=3e-3, generator=torch.Generator().manual_seed(0))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)  # embeddings, norms, lm_head
    ids = torch.randint(0, 256, (8, 32), generator=make_gen("int8w-train"))
    losses = []
    for _ in range(15):
        loss = model(ids, labels=ids).loss
        opt.zero_grad()
        opt8.zero_grad()
        loss.backward()
        opt.step()
        opt8.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.5


def test_convert_works_on_gpt2_conv1d_and_errors_name_the_valid_precisions():
    model = T.convert(tiny_gpt2(), "int8-weight")
    assert any(isinstance(m, T.Int8WeightLinear) for m in model.modules())
    with pytest.raises(ValueError, match="int8-weight"):
        T.convert(tiny_gpt2(), "int2-weight")
    with pytest.raises(ValueError, match="layers"):
        T.Int8WeightAdamW([])


def test_autocast_runs_the_int8_weight_matmuls_in_its_dtype():
    """Like nn.Linear under autocast: a float32 input becomes a bf16 activation — the one saved for
    the backward too (half the bytes; the layer's own codes and scales are saved by reference, no copy)
    — and output, and the weight's gradient for the optimizer is float32."""
    gen = torch.Generator().manual_seed(4)
    w = torch.randn(48, 64, generator=gen)
    layer = T.Int8WeightLinear.from_float(w, torch.zeros(48))
    x = torch.randn(4, 10, 64, generator=gen, requires_grad=True)
    saved = []
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.autograd.graph.saved_tensors_hooks(
            lambda t: saved.append(t) or t, lambda t: t):
        y = layer(x)
    buffers = {layer.qweight.data_ptr(), layer.scale.data_ptr()}
    activations = [t for t in saved if t.data_ptr() not in buffers]
    assert y.dtype == torch.bfloat16 and activations and all(t.dtype == torch.bfloat16 for t in activations), saved
    y.float().square().sum().backward()
    assert layer.grad_weight.dtype == torch.float32 and x.grad.dtype == torch.float32
    ref = x.detach().double() @ layer.dequantize_weight().double().t()
    assert ((y.double() - ref).norm() / ref.norm()).item() < 2**-7  # bf16 rounding of x, w and y


def test_optimizer_state_dict_round_trip_continues_identically():
    """Two steps, state saved; a fresh layer and optimizer loaded from it take the same third step as
    the original (same gradient, same stochastic-rounding draws)."""
    gen = torch.Generator().manual_seed(7)
    w = torch.randn(16, 32, generator=gen)
    grads = [torch.randn(16, 32, generator=gen) for _ in range(3)]

    def make():
        layer = T.Int8WeightLinear.from_float(w, None)
        return layer, T.Int8WeightAdamW([layer], lr=1e-2, weight_decay=0.1, generator=torch.Generator().manual_seed(1))

    layer, opt = make()
    for g in grads[:2]:
        layer.grad_weight = g.clone()
        opt.step()
    sd = opt.state_dict()
    assert set(sd["state"]) == {0} and sd["state"][0]["t"] == 2
    layer2, opt2 = make()
    layer2.qweight.copy_(layer.qweight)
    layer2.scale.copy_(layer.scale)
    opt2.load_state_dict(sd)
    opt2.generator.set_state(opt.generator.get_state())
    for lay, o in ((layer, opt), (layer2, opt2)):
        lay.grad_weight = grads[2].clone()
        o.step()
    assert torch.equal(layer.qweight, layer2.qweight) and torch.equal(layer.scale, layer2.scale)
    with pytest.raises(ValueError, match="layers"):
        opt2.load_state_dict({**sd, "state": {3: sd["state"][0]}})


def test_an_int8_weight_block_compiles_as_one_graph_with_the_same_gradients():
    """The weight's gradient reaches the optimizer through autograd (the zero-stride grad sink), not a
    side effect in the backward: a decoder block compiles whole (fullgraph), and its gradients equal eager's."""
    model = tiny_llama()
    T.convert(model, precision="int8-weight")
    block = model.model.layers[0]
    layers = [m for m in block.modules() if isinstance(m, T.Int8WeightLinear)]
    assert layers and all(m.grad_sink.stride() == (0, 0) and m.grad_sink.is_leaf for m in layers)
    x = torch.randn(2, 8, model.config.hidden_size, generator=make_gen("int8w-compile"))
    pos = model.model.rotary_emb(x, torch.arange(8)[None])

    def grads(fn):
        for m in layers:
            m.grad_weight = None
        out = fn(x, position_embeddings=pos, attention_mask=None)
        (out[0] if isinstance(out, tuple) else out).square().sum().backward()
        return [m.grad_weight.clone() for m in layers]

    eager = grads(block)
    assert torch._dynamo.explain(block)(x, position_embeddings=pos, attention_mask=None).graph_break_count == 0
    compiled = grads(torch.compile(block, backend="aot_eager", fullgraph=True))
    for e, c in zip(eager, compiled):
        torch.testing.assert_close(c, e, rtol=1e-5, atol=1e-6)
    block.to(torch.device("cpu"))  # a move makes a fresh one-element sink where the weight lives
    assert all(m.grad_sink.stride() == (0, 0) and m.grad_weight is None for m in layers)
