"""Which layers to quantize: comma-separated glob patterns over module names, `-pattern` to
exclude, and the presets of the selective-quantization study.

    all          every nn.Linear / Conv1D
    no-lm_head   all but the output projection
    lm_head      the output projection only
    last:N       the attention layers of the last N transformer blocks
    qkv          the query/key/value projections (GPT-2's fused c_attn; Llama's q/k/v_proj)

Examples: "all", "no-lm_head", "last:4", "*.mlp.*,-*.c_proj", "qkv,lm_head".
"""

from __future__ import annotations

import fnmatch
import re

from torch import nn

from .layers import QUANTIZABLE

QKV_NAMES = ("c_attn", "q_proj", "k_proj", "v_proj", "query", "key", "value", "qkv_proj", "query_key_value", "Wqkv")
ATTENTION_PARTS = re.compile(r"(^|\.)(attn|self_attn|attention|self_attention)(\.|$)")


def quantizable_names(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, QUANTIZABLE)]


def output_projection_name(model: nn.Module) -> str | None:
    """Module name of the LM head (the output embedding), found by identity, not by a guess."""
    get = getattr(model, "get_output_embeddings", None)
    head = get() if callable(get) else None
    if head is None:
        return None
    return next((name for name, m in model.named_modules() if m is head), None)


def transformer_blocks(model: nn.Module) -> tuple[str, nn.ModuleList] | None:
    """(name, list) of the transformer blocks: the longest ModuleList in the model."""
    lists = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.ModuleList)]
    return max(lists, key=lambda item: len(item[1])) if lists else None


def block_index(model: nn.Module) -> dict[str, int]:
    """Prefix of each transformer block ("transformer.h.3.") -> its index."""
    found = transformer_blocks(model)
    if found is None:
        return {}
    name, blocks = found
    return {f"{name}.{i}." if name else f"{i}.": i for i in range(len(blocks))}


def _preset(model: nn.Module, item: str, names: list[str]) -> list[str] | None:
    head = output_projection_name(model)
    if item == "all":
        return list(names)
    if item == "no-lm_head":
        return [n for n in names if n != head]
    if item == "lm_head":
        return [n for n in names if n == head]
    if item == "qkv":
        return [n for n in names if n.rsplit(".", 1)[-1] in QKV_NAMES]
    if item.startswith("last:"):
        count = item.split(":", 1)[1]
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"select preset 'last:N' needs a positive integer N, got {item!r}")
        blocks = block_index(model)
        first = len(blocks) - int(count)
        keep = {prefix for prefix, i in blocks.items() if i >= first}
        return [n for n in names if any(n.startswith(p) for p in keep) and ATTENTION_PARTS.search(n)]
    return None


def select_modules(model: nn.Module, select: str = "all") -> list[str]:
    """Names of the quantizable modules chosen by `select`, in model order."""
    if not isinstance(select, str) or not select.strip():
        raise ValueError(f"select must be a non-empty string of patterns or presets, got {select!r}")
    names = quantizable_names(model)
    if not names:
        raise ValueError(f"model {type(model).__name__} has no quantizable layer (nn.Linear or Conv1D)")
    include: set[str] = set()
    exclude: set[str] = set()
    items = [s.strip() for s in select.split(",") if s.strip()]
    if not items:
        raise ValueError(f"select {select!r} names no pattern or preset")
    for item in items:
        target = exclude if item.startswith("-") else include
        pattern = item.lstrip("-")
        matched = _preset(model, pattern, names)
        if matched is None:
            matched = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not matched:
            sample = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
            raise ValueError(f"select pattern {item!r} matches no quantizable layer (layers are named like: {sample})")
        target.update(matched)
    if not include:  # only exclusions given: start from everything
        include = set(names)
    chosen = [n for n in names if n in include and n not in exclude]
    if not chosen:
        raise ValueError(f"select {select!r} leaves no layer to quantize")
    return chosen
