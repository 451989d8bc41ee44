"""An outlier model: give a model's activations a few huge channels without changing its float
function, reproducing on a small model the emergent outlier features of large ones (LLM.int8()).

For k hidden channels (the same in every block, as in large models), each norm's gain and bias
are multiplied by c and the input rows of the linears it feeds are divided by c: the linears see
inputs with c-times larger channels, and compute exactly the same outputs. The features live in
the residual stream's dimensions, so the final norm (feeding the LM head) carries them too; a head
tied to the input embedding is untied first, or the embedding would be divided as well.
"""

from __future__ import annotations

import torch
from torch import nn

from ..select import output_projection_name
from .norms import fold_input_scale, norm_groups


@torch.no_grad()
def add_outlier_features(model: nn.Module, channels: int = 4, factor: float = 40.0, seed: int = 0) -> list[int]:
    """Plant `channels` outlier features of magnitude `factor`; return their indices."""
    if channels < 1:
        raise ValueError(f"channels must be >= 1, got {channels}")
    if not factor > 1:
        raise ValueError(f"factor must be > 1, got {factor}")
    _untie_head(model)
    groups = norm_groups(model)
    if not groups:
        raise ValueError(f"model {type(model).__name__}: no known norm -> linear structure to plant outliers in")
    hidden = groups[0][1].weight.shape[0]
    if channels > hidden:
        raise ValueError(f"channels ({channels}) exceeds the hidden size {hidden}")
    gen = torch.Generator().manual_seed(seed)
    picked = torch.randperm(hidden, generator=gen)[:channels].sort().values
    for _, norm, consumers in groups:
        s = torch.ones(hidden, device=norm.weight.device)
        s[picked.to(s.device)] = factor
        fold_input_scale(model, norm, consumers, 1.0 / s)  # norm output × s, linear inputs ÷ s
    return picked.tolist()



def _untie_head(model: nn.Module) -> None:
    """A head sharing the input embedding's weight gets its own copy, so scaling it leaves the embedding."""
    head_name = output_projection_name(model)
    embed = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if head_name is None or embed is None:
        return
    head = model.get_submodule(head_name)
    if head.weight is embed.weight:
        head.weight = nn.Parameter(head.weight.detach().clone())
        model.config.tie_word_embeddings = False  # so save/load does not tie them again
