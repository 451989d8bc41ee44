"""Seed 001's study on any causal LM: which layers to quantize, and in which format, measured
by model memory, peak forward memory, validation loss and evaluation time.

Every row starts from a fresh copy of the same float model and is evaluated on the same
held-out windows; ratios are against the baseline row of the same run.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..methods import FP8, NF4, RTN, W8A8, KMeans, LLMInt8
from ..select import block_index
from .common import Row, load_setup, measure_row, run_info
from .report import format_table, write_report


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
    setup = load_setup(model_name, device, dtype, n_windows, seq_len)
    rows = [
        measure_row(setup.model, row, setup.windows, batch_size)
        for row in tqdm(rows_for(setup.model), desc=f"selective study on {setup.slug}", disable=not progress)
    ]
    out_dir = Path(out) if out else Path("reports") / f"selective-{setup.slug}"
    write_report(out_dir, f"Selective quantization of {setup.slug}", {"": rows}, run_info(setup, model_name, rows[0]), NOTES)
    return rows, out_dir


NOTES = [
    "Notes:",
    "- model MB: parameters and buffers as stored, each storage once; quantized layers hold packed codes plus float32 scales.",
    "- lm_head rows: GPT-2 ties lm_head to the token embedding. Quantizing lm_head unties them: the embedding stays",
    "  in float and the quantized lm_head is stored beside it, so those rows can cost memory rather than save it.",
    "- peak fwd MB: CUDA max_memory_allocated over one forward of one batch; on CPU, model bytes plus the peak bytes",
    "  of live tensors created during that forward (tracked per storage), see lowbit.measure.",
    "- Weight-only rows run the reference path (dequantize, then float matmul): their times measure that path,",
    "  not a fast kernel. W8A8 and LLM.int8() run int8 matmuls (torch._int_mm).",
]


def print_table(rows: list[dict]) -> None:
    for line in format_table(rows, rows[0]):
        print(line)
