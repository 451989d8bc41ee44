"""Which normalisation layer feeds which linears, inside each transformer block.

SmoothQuant and AWQ fold a per-channel scale into the norm that produces a linear's input, and
the outlier transform plants outliers there; all three need this map. Architectures are named
by the attribute names their blocks use (GPT-2, Llama/Mistral/Qwen, OPT, GPT-NeoX/Pythia).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from ..select import output_projection_name, transformer_blocks

# (norm attribute, consumer linear attributes) within one block
NORM_CONSUMERS = [
    ("ln_1", ["attn.c_attn"]),  # GPT-2
    ("ln_2", ["mlp.c_fc"]),
    ("input_layernorm", ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"]),  # Llama family
    ("post_attention_layernorm", ["mlp.gate_proj", "mlp.up_proj"]),
    ("self_attn_layer_norm", ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"]),  # OPT
    ("final_layer_norm", ["fc1"]),
    ("input_layernorm", ["attention.query_key_value"]),  # GPT-NeoX
    ("post_attention_layernorm", ["mlp.dense_h_to_4h"]),
]


def norm_groups(model: nn.Module) -> list[tuple[str, nn.Module, list[str]]]:
    """(norm name, norm module, full names of the linears it feeds) for every block, then the final
    norm and the LM head — unless the head is tied to the input embedding, which a fold would change."""
    found = transformer_blocks(model)
    if found is None:
        return []
    list_name, blocks = found
    groups = []
    for i, block in enumerate(blocks):
        prefix = f"{list_name}.{i}." if list_name else f"{i}."
        for norm_attr, consumers in NORM_CONSUMERS:
            norm = getattr(block, norm_attr, None)
            present = [c for c in consumers if _has(block, c)]
            if norm is not None and present and len(present) == len(consumers):
                groups.append((prefix + norm_attr, norm, [prefix + c for c in present]))
    return groups + _head_group(model)


def _head_group(model: nn.Module) -> list[tuple[str, nn.Module, list[str]]]:
    norm, head_name = final_norm(model), output_projection_name(model)
    if norm is None or head_name is None:
        return []
    head = model.get_submodule(head_name)
    embed = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if not isinstance(head, (nn.Linear, Conv1D)) or (embed is not None and head.weight is embed.weight):
        return []
    norm_name = next(name for name, m in model.named_modules() if m is norm)
    return [(norm_name, norm, [head_name])]


FINAL_NORMS = ("norm", "ln_f", "final_layer_norm", "final_layernorm")


def final_norm(model: nn.Module) -> nn.Module | None:
    """The norm applied after the last block (GPT-2 ln_f, Llama norm, OPT final_layer_norm)."""
    found = transformer_blocks(model)
    if found is None:
        return None
    blocks_name = found[0]
    base = model.get_submodule(blocks_name.rpartition(".")[0]) if "." in blocks_name else model
    return next((getattr(base, n) for n in FINAL_NORMS if isinstance(getattr(base, n, None), nn.Module)), None)


def _has(module: nn.Module, path: str) -> bool:
    try:
        module.get_submodule(path)
        return True
    except AttributeError:
        return False


def input_weight_view(module: nn.Module) -> torch.Tensor:
    """The weight as [in, out] rows per input feature (a view: Conv1D stores [in, out] already)."""
    if isinstance(module, Conv1D):
        return module.weight.data
    if isinstance(module, nn.Linear):
        return module.weight.data.t()
    raise ValueError(f"expected nn.Linear or Conv1D, got {type(module).__name__}")


@torch.no_grad()
def scale_norm_output(norm: nn.Module, s: torch.Tensor) -> None:
    """Multiply the norm's output channels by s: gain (and bias, where it has one) times s."""
    norm.weight.mul_(s.to(norm.weight.dtype))
    bias = getattr(norm, "bias", None)
    if bias is not None:
        bias.mul_(s.to(bias.dtype))


@torch.no_grad()
def scale_input_features(module: nn.Module, s: torch.Tensor) -> None:
    """Multiply the weight's input feature j by s[j] (so x/s through it gives the same output)."""
    w = input_weight_view(module)
    w.mul_(s.to(w.dtype)[:, None])


@torch.no_grad()
def fold_input_scale(model: nn.Module, norm: nn.Module, consumers: list[str], s: torch.Tensor) -> None:
    """Divide the norm's output channels by s and multiply the matching input features of every
    linear it feeds by s: each linear sees x/s with weights W·s, so the float function is unchanged."""
    scale_norm_output(norm, 1.0 / s)
    for name in consumers:
        scale_input_features(model.get_submodule(name), s)


def observed_norm_groups(model: nn.Module, observed) -> list[tuple[nn.Module, list[str], list[str]]]:
    """(norm, all the linears it feeds, those of them in `observed`) for groups with any observed."""
    groups = []
    for _, norm, consumers in norm_groups(model):
        selected = [c for c in consumers if c in observed]
        if selected:
            groups.append((norm, consumers, selected))
    return groups
