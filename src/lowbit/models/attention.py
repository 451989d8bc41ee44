"""lowbit's decode attention (`ops.decode_attention`) as a transformers attention implementation.

    from lowbit.models.attention import use_decode_attention
    use_decode_attention(model)   # one-token steps take the split-KV kernel; prefill and the rest, SDPA

Masks are built as for "sdpa" (bool, True: attend). A step with one query token, no dropout, no attention weights
asked for and nothing else that changes the math (a softcap, sinks: `IGNORED`) goes to the kernel; everything else
(prefill, training, float masks) to transformers' SDPA function.
"""

from __future__ import annotations

import torch
from torch import nn

from ..ops.decode_attention import decode_attention

NAME = "lowbit_decode"
# what a model's attention passes that the kernel may ignore: positions, cache bookkeeping, the causal flag (one query
# attends to every unmasked slot) and a sliding window (already in the mask). Anything else set (a softcap, attention
# sinks, ...) changes the math: SDPA's function gets the call.
IGNORED = {"position_ids", "use_cache", "cache_position", "is_causal", "sliding_window", "output_attentions"}


def decode_attention_forward(
    module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attention_mask: torch.Tensor | None,
    dropout: float = 0.0, scaling: float | None = None, **kwargs,
) -> tuple[torch.Tensor, None]:
    """transformers' attention-function signature: q [B, H, q, D], k and v [B, Hkv, L, D] → ([B, q, H, D], None)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    one_token = query.shape[2] == 1 and dropout == 0.0 and not kwargs.get("output_attentions", False)
    plain = all(v is None or v is False or name in IGNORED for name, v in kwargs.items())
    if one_token and plain and (attention_mask is None or attention_mask.dtype == torch.bool):
        return decode_attention(query, key, value, attention_mask, scaling).transpose(1, 2), None
    return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)


def register() -> str:
    """Make NAME an attention implementation transformers knows (idempotent); returns NAME."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(NAME, decode_attention_forward)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)
    return NAME


def use_decode_attention(model: nn.Module) -> nn.Module:
    """Switch a transformers model (in place) to lowbit's decode attention; returns the model."""
    if not hasattr(model, "set_attn_implementation"):
        raise ValueError(f"use_decode_attention takes a transformers model, got {type(model).__name__}")
    model.set_attn_implementation(register())
    return model
