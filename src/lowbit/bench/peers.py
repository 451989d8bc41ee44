"""Other libraries' quantization schemes, put side by side with lowbit's in the benches where they
import (neither bitsandbytes nor torchao is a lowbit dependency, nor on the GPU image; carry their
wheels there to run them). The peer quantizes nn.Linear modules in place, its own way: for inference
(`PEERS`) or for training (`TRAINING_PEERS`: torchao's float8 and INT8 mixed-precision training)."""

from __future__ import annotations

import importlib.util

from torch import nn

PEERS = {
    "bnb-nf4": "bitsandbytes NF4 (Linear4bit)",
    "bnb-int8": "bitsandbytes LLM.int8() (Linear8bitLt)",
    "torchao-int4": "torchao int4 weight-only g128",
    "torchao-int8": "torchao int8 weight-only",
    "torchao-fp8": "torchao FP8 row-wise (dynamic activations)",
}


TRAINING_PEERS = {
    "torchao-float8-rowwise": "torchao float8 training, row-wise scales",
    "torchao-float8-tensorwise": "torchao float8 training, tensor-wise scales",
    "torchao-int8-mp": "torchao INT8 mixed-precision training",
}


def library(peer: str) -> str:
    return "bitsandbytes" if peer.startswith("bnb") else "torchao"


def importable(peer: str) -> bool:
    return importlib.util.find_spec(library(peer)) is not None


def quantize(model: nn.Module, peer: str, names: list[str]) -> nn.Module:
    """Replace the nn.Linear modules `names` of `model` by the peer's quantized ones, in place."""
    if peer not in PEERS:
        raise ValueError(f"unknown peer scheme {peer!r}; valid: {', '.join(PEERS)}")
    if peer.startswith("torchao"):
        from torchao.quantization import quantize_

        chosen = set(names)
        quantize_(model, _torchao_config(peer), filter_fn=lambda m, fqn: fqn in chosen)
        return model
    import bitsandbytes as bnb
    import torch

    from ..layers import replace_module

    for name in names:
        lin = model.get_submodule(name)
        w = lin.weight.detach()
        if peer == "bnb-nf4":
            new = bnb.nn.Linear4bit(lin.in_features, lin.out_features, bias=lin.bias is not None, compute_dtype=w.dtype, quant_type="nf4")
            new.weight = bnb.nn.Params4bit(w, requires_grad=False, quant_type="nf4")
        else:
            new = bnb.nn.Linear8bitLt(lin.in_features, lin.out_features, bias=lin.bias is not None, has_fp16_weights=False, threshold=6.0)
            new.weight = bnb.nn.Int8Params(w.cpu(), requires_grad=False, has_fp16_weights=False)  # quantizes on its move to the GPU
        if lin.bias is not None:
            new.bias = torch.nn.Parameter(lin.bias.detach(), requires_grad=False)
        replace_module(model, name, new.to(w.device))
    return model


def _torchao_config(peer: str):
    from torchao.quantization import Int4WeightOnlyConfig, Int8WeightOnlyConfig

    if peer == "torchao-int4":
        return Int4WeightOnlyConfig(group_size=128)
    if peer == "torchao-int8":
        return Int8WeightOnlyConfig()
    from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow

    return Float8DynamicActivationFloat8WeightConfig(granularity=PerRow())


def convert_for_training(model: nn.Module, peer: str, skip: str = "lm_head") -> nn.Module:
    """Swap the model's nn.Linear modules (all but `skip`, as lowbit's `no-lm_head`) for the peer's
    training linears, in place."""
    if peer not in TRAINING_PEERS:
        raise ValueError(f"unknown training peer {peer!r}; valid: {', '.join(TRAINING_PEERS)}")

    def keep(module: nn.Module, fqn: str) -> bool:
        return isinstance(module, nn.Linear) and fqn.split(".")[-1] != skip

    if peer.startswith("torchao-float8"):
        from torchao.float8 import Float8LinearConfig, convert_to_float8_training

        config = Float8LinearConfig.from_recipe_name(peer.removeprefix("torchao-float8-"))
        return convert_to_float8_training(model, module_filter_fn=keep, config=config)
    from torchao.prototype.quantized_training import int8_mixed_precision_training
    from torchao.quantization import quantize_

    quantize_(model, int8_mixed_precision_training(), filter_fn=keep)
    return model
