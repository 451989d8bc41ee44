"""lowbit's front door: quantize a model in place, save it, load it back.

    model = lowbit.quantize(model, lowbit.RTN(bits=8), select="no-lm_head")
    lowbit.save(model, "out/")
    model = lowbit.load("out/")

Files are safetensors plus a JSON description (the model config and, per quantized layer, its
class and constructor arguments). Nothing is ever unpickled.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from safetensors.torch import load_model, save_model
from torch import nn
from tqdm.auto import tqdm

from .layers import LAYER_CLASSES, QuantLinear, float_weight, replace_module
from .methods import resolve
from .methods.sequential import calibrate_sequentially
from .models.fuse import Columns, fuse_projections
from .select import output_projection_name, select_modules

log = logging.getLogger("lowbit")
FORMAT_VERSION = 1
DESCRIPTION = "lowbit.json"
WEIGHTS = "model.safetensors"


def quantize(
    model: nn.Module,
    method,
    select: str = "all",
    calibration: torch.Tensor | None = None,
    progress: bool = False,
    device: str | torch.device | None = None,
) -> nn.Module:
    """Replace the selected linears of `model` with quantized layers built by `method`; return it.

    `calibration`: token ids [n, seq_len] for methods that need data (GPTQ); the round-to-nearest
    methods ignore it. `device`: where calibration runs, one block at a time (default: the model's).
    """
    method = resolve(method)
    names = select_modules(model, select)
    for name in names:  # every check before the first change: a bad weight leaves the model untouched
        float_weight(model.get_submodule(name), name)
    calibrated = getattr(method, "needs_calibration", False)
    if calibrated and (not isinstance(calibration, torch.Tensor) or calibration.dim() != 2 or calibration.dtype != torch.long):
        raise ValueError(f"calibration must be token ids of shape [n, seq_len] (int64) for {type(method).__name__}, got {_describe(calibration)}")
    _untie_output_embedding(model, names)
    if calibrated:
        calibrate_sequentially(model, method, names, calibration, device=device, progress=progress)
        return model
    for name in tqdm(names, desc=f"quantize {type(method).__name__}", disable=not progress, leave=False):
        module = model.get_submodule(name)
        weight, bias = float_weight(module, name)
        replace_module(model, name, method.layer(weight, bias).to(weight.device))
    return model


def _describe(x) -> str:
    return f"a tensor of shape {tuple(x.shape)} and dtype {x.dtype}" if isinstance(x, torch.Tensor) else repr(x)


def _untie_output_embedding(model: nn.Module, names: list[str]) -> None:
    """GPT-2 shares lm_head.weight with the token embedding. Quantizing lm_head must leave the
    embedding in float: replacing the module unties them; say so and what it costs."""
    head = output_projection_name(model)
    if head is None or head not in names:
        return
    inputs = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    head_weight = model.get_submodule(head).weight
    if inputs is not None and inputs.weight is head_weight:
        # a copy now, not at replacement: calibration may fold scales into the head's weight (SmoothQuant, AWQ)
        model.get_submodule(head).weight = nn.Parameter(head_weight.detach().clone())
        model.config.tie_word_embeddings = False
        log.info(
            "untied %s from the input embedding: the embedding stays in float (%.1f MB) and the quantized %s is stored beside it",
            head, head_weight.numel() * head_weight.element_size() / 1e6, head,
        )


def quantized_layers(model: nn.Module) -> dict[str, QuantLinear]:
    return {name: m for name, m in model.named_modules() if isinstance(m, QuantLinear)}


def _saved_class(layer: QuantLinear) -> str:
    """The layer's class as `load` knows it: a fused norm's subclass (`models.fused_norms`) is saved as its layer,
    which loads unfused (the fusion is a run-time change: `fuse_norms` again after `load`)."""
    return next(c.__name__ for c in type(layer).__mro__ if c.__name__ in LAYER_CLASSES)


def save(model: nn.Module, directory: str | Path, tokenizer=None) -> Path:
    """Write `model.safetensors` and `lowbit.json` (and the tokenizer, if given) into `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "to_dict"):
        raise ValueError("model must be a Hugging Face PreTrainedModel (it needs a config to be rebuilt on load)")
    dtype = next((p.dtype for p in model.parameters()), torch.float32)
    description = {
        "format_version": FORMAT_VERSION,
        "model_config": config.to_dict(),
        "dtype": str(dtype).removeprefix("torch."),
        "fused_projections": any(isinstance(m, Columns) for m in model.modules()),  # `models.fuse`, redone on load
        "layers": {
            name: {
                "class": _saved_class(m),
                "in_features": m.in_features,
                "out_features": m.out_features,
                "bias": m.bias is not None,
                "bias_dtype": str(m.bias.dtype).removeprefix("torch.") if m.bias is not None else None,
                "config": m.config(),
            }
            for name, m in quantized_layers(model).items()
        },
    }
    save_model(model, str(directory / WEIGHTS))
    (directory / DESCRIPTION).write_text(json.dumps(description, indent=2))
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)
    return directory


def load(directory: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a model written by `save`: the architecture from its config, quantized layers from
    their recorded arguments, then every tensor from safetensors (strict: nothing missing or extra)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    directory = Path(directory)
    path = directory / DESCRIPTION
    if not directory.is_dir():
        raise ValueError(f"{str(directory)!r} is not a directory (lowbit.load takes the folder lowbit.save wrote)")
    if not path.is_file():
        raise ValueError(f"directory {str(directory)!r} holds no {DESCRIPTION}; was it written by lowbit.save?")
    description = json.loads(path.read_text())
    if description.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path} has format_version {description.get('format_version')!r}; this lowbit reads {FORMAT_VERSION}")
    cfg = dict(description["model_config"])
    config = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    dtype = getattr(torch, description["dtype"])
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    if description.get("fused_projections"):
        fuse_projections(model)
    for name, spec in description["layers"].items():
        cls = LAYER_CLASSES.get(spec["class"])
        if cls is None:
            raise ValueError(f"{path}: layer {name!r} has unknown class {spec['class']!r}")
        bias_dtype = getattr(torch, spec["bias_dtype"]) if spec["bias_dtype"] else torch.float32
        layer = cls(spec["in_features"], spec["out_features"], spec["bias"], bias_dtype=bias_dtype, **spec["config"])
        replace_module(model, name, layer)
    load_model(model, str(directory / WEIGHTS), strict=True)
    return model.to(device).eval()
