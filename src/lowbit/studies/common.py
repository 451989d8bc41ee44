"""What every study shares: loading the model and the held-out windows once, measuring one row
(a fresh copy of the float model, quantized, then measured), and describing the run."""

from __future__ import annotations

import copy
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .. import api
from ..data.shakespeare import train_text, validation_text
from ..data.windows import token_windows, tokenize_text
from ..measure import evaluate, model_bytes, model_device, peak_forward_bytes, unigram_loss
from ..models.hf import load_causal_lm


@dataclass(frozen=True)
class Row:
    name: str
    select: str | None  # None: the float baseline
    method: object | None


@dataclass
class Setup:
    model: nn.Module
    tokenizer: object
    slug: str
    windows: torch.Tensor  # held-out validation windows, the same for every row
    unigram: float  # the loss of a context-free model on those windows
    device: str
    dtype: torch.dtype


def context_length(model: nn.Module, default: int = 2048) -> int:
    """The longest sequence the model takes (GPT-2: n_positions; Llama: max_position_embeddings)."""
    config = model.config
    return getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None) or default


def load_setup(model_name: str | None, device: str | None, dtype: torch.dtype, n_windows: int, seq_len: int) -> Setup:
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, tokenizer, slug = load_causal_lm(model_name, device=device, dtype=dtype)
    windows = token_windows(tokenizer, validation_text(), min(seq_len, context_length(model)), n_windows)
    unigram = unigram_loss(tokenize_text(tokenizer, train_text()), windows, len(tokenizer))
    return Setup(model, tokenizer, slug, windows, unigram, device, dtype)


def measure_row(base: nn.Module, row: Row, windows: torch.Tensor, batch_size: int, calibration: torch.Tensor | None = None) -> dict:
    model = copy.deepcopy(base)
    start = time.perf_counter()
    if row.method is not None:
        api.quantize(model, row.method, row.select, calibration=calibration)
    if model_device(model).type == "cuda":
        torch.cuda.synchronize()
    quantize_seconds = time.perf_counter() - start
    peak = peak_forward_bytes(model, windows[:batch_size].to(model_device(model)))
    ev = evaluate(model, windows, batch_size)
    return {
        "name": row.name,
        "select": row.select,
        "method": repr(row.method) if row.method is not None else None,
        "quantized_layers": len(api.quantized_layers(model)),
        "model_bytes": model_bytes(model),
        "peak_forward_bytes": peak,
        "loss": ev.loss,
        "ppl": ev.ppl,
        "seconds": ev.seconds,
        "quantize_seconds": quantize_seconds,
        "tokens": ev.tokens,
    }


def run_info(setup: Setup, model_name: str | None, baseline: dict) -> dict:
    argv = sys.argv
    command = " ".join(["lowbit", *argv[1:]]) if Path(argv[0]).name == "lowbit" else " ".join(argv)
    return {
        "command": command,
        "model": model_name or "default",
        "device": device_name(setup.device),
        "dtype": str(setup.dtype).removeprefix("torch."),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "validation": f"{len(setup.windows)} windows x {setup.windows.shape[1]} tokens of held-out plays ({baseline['tokens']} predicted tokens)",
        "unigram baseline loss": f"{setup.unigram:.4f} (train-text token frequencies, add-one smoothing, same windows)",
        "baseline loss": f"{baseline['loss']:.4f} ({setup.unigram - baseline['loss']:.3f} nats below the unigram baseline)",
    }


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
