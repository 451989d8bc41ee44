"""Seed 001's study on any causal LM: which layers to quantize, and in which format, measured
by model memory, peak forward memory, validation loss and evaluation time.

Every row starts from a fresh copy of the same float model and is evaluated on the same
held-out windows; ratios are against the baseline row of the same run.
"""

from __future__ import annotations

import copy
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .. import api
from ..data.shakespeare import train_text, validation_text
from ..data.windows import token_windows, tokenize_text
from ..measure import evaluate, model_bytes, peak_forward_bytes, unigram_loss
from ..methods import FP8, NF4, RTN, W8A8, KMeans, LLMInt8
from ..models.hf import load_causal_lm
from ..select import block_index
from .report import format_table, write_report


@dataclass(frozen=True)
class Row:
    name: str
    select: str | None  # None: the float baseline
    method: object | None


def rows_for(model) -> list[Row]:
    """The seed's rows. 'last N attention blocks' is 4 as in the seed (12-block GPT-2); a model
    with fewer than 8 blocks gets half its blocks, so the row stays a strict subset."""
    last = min(4, max(1, len(block_index(model)) // 2))
    int8 = RTN(bits=8, granularity="channel")
    return [
        Row("baseline (float)", None, None),
        Row("int8 whole model", "all", int8),
        Row("int8 without lm_head", "no-lm_head", int8),
        Row("int8 lm_head only", "lm_head", int8),
        Row(f"int8 last {last} attention blocks", f"last:{last}", int8),
        Row("int8 q,k,v only", "qkv", int8),
        Row("int8 absmax per-tensor", "all", RTN(bits=8, granularity="tensor", symmetric=True)),
        Row("int8 zero-point per-tensor", "all", RTN(bits=8, granularity="tensor", symmetric=False)),
        Row("int4 g128 RTN", "all", RTN(bits=4, granularity="group", group_size=128, symmetric=False)),
        Row("NF4 (b64, double quant)", "all", NF4(block_size=64, double_quant=True)),
        Row("FP8 e4m3 per-channel", "all", FP8(fmt="e4m3", granularity="channel")),
        Row("LLM.int8() t=6", "all", LLMInt8(threshold=6.0)),
        Row("W8A8 dynamic per-token", "all", W8A8(act_granularity="token")),
        Row("k-means 4-bit", "all", KMeans(bits=4)),
    ]


def run_row(base, row: Row, windows: torch.Tensor, batch_size: int) -> dict:
    model = copy.deepcopy(base)
    start = time.perf_counter()
    if row.method is not None:
        api.quantize(model, row.method, row.select)
    quantize_seconds = time.perf_counter() - start
    layers = len(api.quantized_layers(model))
    peak = peak_forward_bytes(model, windows[:batch_size].to(next(base.parameters()).device))
    ev = evaluate(model, windows, batch_size)
    result = {
        "name": row.name,
        "select": row.select,
        "method": repr(row.method) if row.method is not None else None,
        "quantized_layers": layers,
        "model_bytes": model_bytes(model),
        "peak_forward_bytes": peak,
        "loss": ev.loss,
        "ppl": ev.ppl,
        "seconds": ev.seconds,
        "quantize_seconds": quantize_seconds,
        "tokens": ev.tokens,
    }
    del model
    return result


def run(
    model_name: str | None = None,
    *,
    device: str | None = None,
    out: str | Path | None = None,
    n_windows: int = 64,
    seq_len: int = 256,
    batch_size: int = 8,
    dtype: torch.dtype = torch.float32,
    progress: bool = True,
) -> tuple[list[dict], Path]:
    """Run every row; write reports/selective-<model>/; return (rows, output dir)."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, tokenizer, slug = load_causal_lm(model_name, device=device, dtype=dtype)
    max_len = getattr(model.config, "n_positions", None) or getattr(model.config, "max_position_embeddings", seq_len)
    seq_len = min(seq_len, max_len)
    windows = token_windows(tokenizer, validation_text(), seq_len, n_windows)
    unigram = unigram_loss(tokenize_text(tokenizer, train_text()), windows, len(tokenizer))
    rows = []
    for row in tqdm(rows_for(model), desc=f"selective study on {slug}", disable=not progress):
        rows.append(run_row(model, row, windows, batch_size))
    out_dir = Path(out) if out else Path("reports") / f"selective-{slug}"
    run_info = {
        "command": " ".join(["lowbit", *sys.argv[1:]]) if Path(sys.argv[0]).name == "lowbit" else " ".join(sys.argv),
        "model": model_name or "default",
        "device": _device_name(device),
        "dtype": str(dtype).removeprefix("torch."),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "validation": f"{len(windows)} windows x {seq_len} tokens of held-out plays ({rows[0]['tokens']} predicted tokens)",
        "unigram baseline loss": f"{unigram:.4f} (train-text token frequencies, add-one smoothing, same windows)",
        "baseline loss": f"{rows[0]['loss']:.4f} ({unigram - rows[0]['loss']:.3f} nats below the unigram baseline)",
    }
    write_report(out_dir, f"Selective quantization of {slug}", rows, run_info, _notes(rows))
    return rows, out_dir


def _notes(rows: list[dict]) -> list[str]:
    return [
        "Notes:",
        "- model MB: parameters and buffers as stored, each storage once; quantized layers hold packed codes plus float32 scales.",
        "- lm_head rows: GPT-2 ties lm_head to the token embedding. Quantizing lm_head unties them: the embedding stays",
        "  in float and the quantized lm_head is stored beside it, so those rows can cost memory rather than save it.",
        "- peak fwd MB: CUDA max_memory_allocated over one forward of one batch; on CPU, model bytes plus the peak bytes",
        "  of live tensors created during that forward (tracked per storage), see lowbit.measure.",
        "- All weight-only rows run the reference path (dequantize, then float matmul): their times measure that path,",
        "  not a fast kernel. W8A8 and LLM.int8() run int8 matmuls (torch._int_mm).",
    ]


def _device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def print_table(rows: list[dict]) -> None:
    for line in format_table(rows, rows[0]):
        print(line)
