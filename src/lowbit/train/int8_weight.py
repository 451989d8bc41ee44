"""INT8 weight-only training (seed 002's second method): a linear whose weight exists only as int8
codes with per-output-channel scales — no high-precision master copy — updated in place by an
optimizer that rounds the new weights stochastically, so updates smaller than one quantization
step still move the weights in expectation instead of being rounded away.

The weight is not an nn.Parameter (autograd cannot hold int8 leaves): backward leaves its gradient
in `layer.grad_weight`, and `Int8WeightAdamW` steps those layers; the model's other parameters
(bias, norms, embeddings) take a usual optimizer.
"""

from __future__ import annotations

import torch
from torch import nn

from ..formats import int as intfmt
from ..ops.int8_adamw import adamw_int8_step_
from .linear import autocast_input


class _Int8WeightFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, bias: torch.Tensor | None, layer: "Int8WeightLinear") -> torch.Tensor:
        w = layer.dequantize_weight(x.dtype)
        x2 = x.reshape(-1, x.shape[-1])
        y = x2 @ w.t()
        if bias is not None:
            y = y + bias.to(y.dtype)
        ctx.save_for_backward(x2)
        ctx.layer, ctx.has_bias, ctx.x_shape = layer, bias is not None, x.shape
        return y.reshape(*x.shape[:-1], w.shape[0])

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (x2,) = ctx.saved_tensors
        layer = ctx.layer
        g2 = grad_out.reshape(-1, grad_out.shape[-1])
        # in the activations' dtype, as autocast runs nn.Linear's grad-weight (fp32 accumulation inside
        # the matmul), kept in float32 for the optimizer; a float32 matmul runs without the tensor cores
        grad_w = (g2.t() @ x2.to(g2.dtype)).float()
        layer.grad_weight = grad_w if layer.grad_weight is None else layer.grad_weight + grad_w  # accumulates like .grad
        grad_x = (g2 @ layer.dequantize_weight(g2.dtype)).reshape(ctx.x_shape)
        grad_b = g2.sum(dim=0) if ctx.has_bias and ctx.needs_input_grad[1] else None
        return grad_x, grad_b, None


class Int8WeightLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=torch.float32):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.register_buffer("qweight", torch.zeros(out_features, in_features, dtype=torch.int8, device=device))
        self.register_buffer("scale", torch.ones(out_features, 1, device=device))
        self.bias = nn.Parameter(torch.zeros(out_features, device=device, dtype=dtype)) if bias else None
        self.grad_weight: torch.Tensor | None = None

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
        return _Int8WeightFn.apply(autocast_input(x), self.bias, self)

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
