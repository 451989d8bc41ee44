"""Fixed token windows of a text, for evaluation and calibration."""

from __future__ import annotations

import torch


def tokenize_text(tokenizer, text: str) -> torch.Tensor:
    """Token ids of the whole text as a 1-D int64 tensor, with no special tokens added.

    One call on the whole text (`verbose=False` silences the "longer than the maximum
    sequence length" warning, which does not apply: the ids are cut into windows later).
    """
    ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
    return torch.tensor(ids, dtype=torch.int64)


def windows_from_ids(ids: torch.Tensor, seq_len: int, n_windows: int | None) -> torch.Tensor:
    """Cut 1-D ids into non-overlapping [n, seq_len] windows: all of them, or n spread evenly
    over the text (so a few windows still sample every held-out play, not just the first)."""
    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")
    if n_windows is not None and n_windows < 1:
        raise ValueError(f"n_windows must be >= 1 or None, got {n_windows}")
    available = ids.numel() // seq_len
    if available < 1:
        raise ValueError(
            f"text too short: {ids.numel()} tokens, fewer than one window of seq_len={seq_len}"
        )
    windows = ids[: available * seq_len].reshape(available, seq_len)
    if n_windows is None or n_windows >= available:
        return windows.clone()
    picked = torch.linspace(0, available - 1, n_windows).round().long()
    return windows[picked].clone()


def token_windows(tokenizer, text: str, seq_len: int, n_windows: int | None) -> torch.Tensor:
    """Tokenize `text` once and return `n_windows` windows of `seq_len` tokens spread over it.

    Deterministic (no sampling), so every caller measures the same tokens. If the text
    holds fewer than `n_windows` windows, all available windows are returned.
    """
    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")
    if n_windows is not None and n_windows < 1:
        raise ValueError(f"n_windows must be >= 1 or None, got {n_windows}")
    return windows_from_ids(tokenize_text(tokenizer, text), seq_len, n_windows)
