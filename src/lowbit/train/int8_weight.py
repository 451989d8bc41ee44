"""INT8 weight-only training (seed 002's second method): a linear whose weight exists only as int8
codes with per-output-channel scales — no high-precision master copy — updated in place by an
optimizer that rounds the new weights stochastically, so updates smaller than one quantization
step still move the weights in expectation instead of being rounded away.

The weight is not an nn.Parameter (autograd cannot hold int8 leaves). Its gradient flows to a
stand-in leaf instead, `layer.grad_sink`: a float32 tensor of the weight's shape with zero strides (one
element of storage), so autograd accumulates the gradient in `grad_sink.grad` (`layer.grad_weight`)
the usual way, with no side effect in the backward that would split a compiled graph at every linear.
`Int8WeightAdamW` steps those layers; the model's other parameters (bias, norms, embeddings) take a
usual optimizer.
"""

from __future__ import annotations

import torch
from torch import nn

from ..formats import int as intfmt
from ..ops.int8_adamw import adamw_int8_step_
from .linear import autocast_input


class _Int8WeightFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, qweight: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None,
                grad_sink: torch.Tensor) -> torch.Tensor:
        w = intfmt.dequantize(qweight, scale, None, "channel", dtype=x.dtype)
        x2 = x.reshape(-1, x.shape[-1])
        y = x2 @ w.t()
        if bias is not None:
            y = y + bias.to(y.dtype)
        ctx.save_for_backward(x2, qweight, scale)
        ctx.has_bias, ctx.x_shape = bias is not None, x.shape
        return y.reshape(*x.shape[:-1], w.shape[0])

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        x2, qweight, scale = ctx.saved_tensors
        g2 = grad_out.reshape(-1, grad_out.shape[-1])
        # in the activations' dtype, as autocast runs nn.Linear's grad-weight (fp32 accumulation inside
        # the matmul), handed on in float32 for the optimizer; a float32 matmul runs without the tensor cores
        grad_w = (g2.t() @ x2.to(g2.dtype)).float() if ctx.needs_input_grad[4] else None
        grad_x = (g2 @ intfmt.dequantize(qweight, scale, None, "channel", dtype=g2.dtype)).reshape(ctx.x_shape)
        grad_b = g2.sum(dim=0) if ctx.has_bias and ctx.needs_input_grad[3] else None
        return grad_x, None, None, grad_b, grad_w


def _grad_sink(out_features: int, in_features: int, device) -> torch.Tensor:
    """A leaf of the weight's shape that stores one float: autograd gives it the weight's gradient."""
    return torch.empty_strided((out_features, in_features), (0, 0), device=device).zero_().requires_grad_()


class Int8WeightLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=torch.float32):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.register_buffer("qweight", torch.zeros(out_features, in_features, dtype=torch.int8, device=device))
        self.register_buffer("scale", torch.ones(out_features, 1, device=device))
        self.bias = nn.Parameter(torch.zeros(out_features, device=device, dtype=dtype)) if bias else None
        self.grad_sink = _grad_sink(out_features, in_features, device)  # not a parameter: no optimizer state, not saved

    def _apply(self, fn, recurse=True):
        # .to(device) and friends: a fresh sink where the weight now lives (moving it would materialize it)
        super()._apply(fn, recurse)
        self.grad_sink = _grad_sink(self.out_features, self.in_features, self.qweight.device)
        return self

    @property
    def grad_weight(self) -> torch.Tensor | None:
        """The weight's gradient (float32), accumulated over backward passes like a parameter's .grad."""
        return self.grad_sink.grad

    @grad_weight.setter
    def grad_weight(self, value: torch.Tensor | None) -> None:
        self.grad_sink.grad = value

    @classmethod
    def from_float(cls, weight: torch.Tensor, bias: torch.Tensor | None) -> "Int8WeightLinear":
        layer = cls(weight.shape[1], weight.shape[0], bias is not None, weight.device, weight.dtype)
        layer.set_weight(weight.detach().float(), rounding="nearest")
        if bias is not None:
            with torch.no_grad():
                layer.bias.copy_(bias)
        return layer

    def set_weight(self, weight: torch.Tensor, rounding: str = "stochastic", generator: torch.Generator | None = None) -> None:
        """Store a float weight as int8 codes with fresh per-channel scales."""
        q = intfmt.quantize(weight, 8, granularity="channel", rounding=rounding, generator=generator, validate=False)
        self.qweight.copy_(q.codes)
        self.scale.copy_(q.scale)

    def dequantize_weight(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return intfmt.dequantize(self.qweight, self.scale, None, "channel", dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _Int8WeightFn.apply(autocast_input(x), self.qweight, self.scale, self.bias, self.grad_sink)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, int8 weights"


class Int8WeightAdamW:
    """AdamW for `Int8WeightLinear` layers: moments in float32, the new weight rounded stochastically
    back to int8 (rounding="nearest" is there to show what is lost without it)."""

    def __init__(self, layers: list[Int8WeightLinear], lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, rounding: str = "stochastic", generator: torch.Generator | None = None):
        if not layers:
            raise ValueError("layers must hold at least one Int8WeightLinear")
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        self.layers, self.lr, self.betas, self.eps, self.weight_decay = list(layers), lr, betas, eps, weight_decay
        self.rounding, self.generator = rounding, generator
        self.state: dict[int, dict] = {}

    @torch.no_grad()
    def step(self) -> None:
        """One AdamW step a layer: on CUDA one fused kernel (`ops.int8_adamw`), elsewhere the torch reference."""
        for layer in self.layers:
            g = layer.grad_weight
            if g is None:
                continue
            st = self.state.setdefault(id(layer), {"t": 0, "m": torch.zeros_like(g), "v": torch.zeros_like(g)})
            st["t"] += 1
            adamw_int8_step_(layer.qweight, layer.scale, g.contiguous(), st["m"], st["v"], step=st["t"], lr=self.lr, betas=self.betas,
                             eps=self.eps, weight_decay=self.weight_decay, rounding=self.rounding, generator=self.generator)

    def zero_grad(self) -> None:
        for layer in self.layers:
            layer.grad_weight = None

    def state_dict(self) -> dict:
        """Moments and step count of each layer, keyed by its index in `layers` (as torch optimizers
        key parameters), and the hyper-parameters."""
        state = {i: dict(self.state[id(layer)]) for i, layer in enumerate(self.layers) if id(layer) in self.state}
        return {"state": state, "lr": self.lr, "betas": self.betas, "eps": self.eps, "weight_decay": self.weight_decay}

    def load_state_dict(self, state_dict: dict) -> None:
        for i in state_dict["state"]:
            if not 0 <= int(i) < len(self.layers):
                raise ValueError(f"state_dict holds layer {i}, but this optimizer has {len(self.layers)} layers")
        self.state = {id(self.layers[int(i)]): {"t": st["t"], "m": st["m"].clone(), "v": st["v"].clone()}
                      for i, st in state_dict["state"].items()}
        self.lr, self.betas, self.eps, self.weight_decay = (state_dict["lr"], tuple(state_dict["betas"]), state_dict["eps"],
                                                           state_dict["weight_decay"])
