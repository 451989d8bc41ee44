"""Calibration data: seeded random windows of a corpus, the same for every method of a run."""

from __future__ import annotations

import torch

from .windows import tokenize_text


def random_windows(ids: torch.Tensor, n: int, seq_len: int, seed: int = 0) -> torch.Tensor:
    """n windows of seq_len tokens starting at seeded random offsets of 1-D ids: [n, seq_len]."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")
    if ids.numel() <= seq_len:
        raise ValueError(f"corpus of {ids.numel()} tokens is too short for calibration windows of seq_len={seq_len}")
    gen = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, ids.numel() - seq_len, (n,), generator=gen)
    return torch.stack([ids[s : s + seq_len] for s in starts.tolist()])


def calibration_windows(tokenizer, text: str, n: int = 128, seq_len: int = 2048, seed: int = 0) -> torch.Tensor:
    """GPTQ's recipe: n random windows of seq_len tokens (defaults 128 × 2048 for real models)."""
    return random_windows(tokenize_text(tokenizer, text), n, seq_len, seed)
