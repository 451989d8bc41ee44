"""Load a causal LM by name: the embedded default model, a local folder or a hub name."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from lowbit.models.default import DEFAULT_NAME, ensure_default_model

DEFAULT_ALIASES = ("default", DEFAULT_NAME)


def is_default_name(name_or_path: str | None) -> bool:
    """None, "" and "default"/"gpt2-shakespeare" (unless a folder of that name exists)."""
    if not name_or_path:
        return True
    return name_or_path in DEFAULT_ALIASES and not Path(name_or_path).exists()


def model_slug(name_or_path: str) -> str:
    """A short, filesystem-safe name for report folders ("org/name" -> "org--name")."""
    path = Path(name_or_path).expanduser()
    base = path.resolve().name if path.exists() else name_or_path.replace("/", "--")
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-.").lower()
    return slug or "model"


def _looks_like_a_path(name: str) -> bool:
    """Absolute, relative to '.' or '~', or deeper than a hub name's one 'org/name' slash."""
    return name.startswith(("/", "./", "../", "~")) or name.count("/") > 1 or "\\" in name


def load_causal_lm(
    name_or_path: str | None,
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, str]:
    """Return (model in eval mode on `device`, tokenizer, slug).

    None or "default" means lowbit's embedded default model, trained on first use.
    Load failures (missing folder, hub name while offline, ...) become a ValueError
    naming the `--model` argument and the cause.
    """
    if is_default_name(name_or_path):
        path = str(ensure_default_model())
        slug = DEFAULT_NAME
    else:
        local = Path(name_or_path).expanduser()
        if not local.exists() and _looks_like_a_path(name_or_path):  # the hub would only complain of a bad repo id
            raise ValueError(f"--model/model {name_or_path!r}: no such directory (a local model folder, or a hub "
                             "name such as 'gpt2' or 'org/name')")
        path = str(local) if local.exists() else name_or_path  # else a hub name
        slug = model_slug(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, use_safetensors=True)  # never unpickle weights
    except Exception as exc:  # noqa: BLE001 - any load failure is a bad --model value
        raise ValueError(
            f"could not load --model/model {name_or_path!r}: {type(exc).__name__}: {exc}"
        ) from exc
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token  # so batched evaluation can pad
    return model.to(device).eval(), tokenizer, slug


def repeated_blocks(model: nn.Module) -> list[nn.Module]:
    """The model's repeated blocks: its longest ModuleList of more than one module (a HF model's decoder
    layers), or [] when it has none. Identical blocks compile to one graph, so compiling them one by
    one costs one block, not the depth."""
    lists = [m for m in model.modules() if isinstance(m, nn.ModuleList) and len(m) > 1]
    return list(max(lists, key=len)) if lists else []
