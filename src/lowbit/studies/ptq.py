"""Post-training quantization study: RTN against GPTQ, AWQ, SmoothQuant and LLM.int8() on a model
and on its outlier variants (the same float function with a few 40x or 60x activation channels, the
emergent outliers of large models), with quantization time per row.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..data.calibration import calibration_windows
from ..data.shakespeare import train_text
from ..methods import AWQ, GPTQ, NF4, RTN, W8A8, LLMInt8, SmoothQuant
from ..methods.llm_int8 import outlier_report
from ..models.outliers import add_outlier_features
from .common import Row, load_setup, measure_row, run_info
from .report import format_table, write_report

OUTLIER_CHANNELS = 4
OUTLIER_FACTORS = (40.0, 60.0)  # the range is 20-60: the middle and the top of it


def rows_for(group_size: int = 128) -> list[Row]:
    g = group_size
    return [
        Row("baseline (float)", None, None),
        Row("RTN w8 per-channel", "all", RTN(bits=8, granularity="channel")),
        Row(f"RTN w4 g{g}", "all", RTN(bits=4, granularity="group", group_size=g, symmetric=False)),
        Row(f"GPTQ w4 g{g}", "all", GPTQ(bits=4, group_size=g)),
        Row(f"GPTQ w4 g{g} act-order", "all", GPTQ(bits=4, group_size=g, act_order=True)),
        Row(f"RTN w3 g{g}", "all", RTN(bits=3, granularity="group", group_size=g, symmetric=False)),
        Row(f"GPTQ w3 g{g}", "all", GPTQ(bits=3, group_size=g)),
        Row("NF4 (b64)", "all", NF4(block_size=64)),
        Row(f"AWQ w4 g{g}", "all", AWQ(bits=4, group_size=g)),
        Row("W8A8 naive (per-tensor dynamic)", "all", W8A8(act_granularity="tensor", weight_granularity="tensor")),
        Row("W8A8 per-token dynamic", "all", W8A8(act_granularity="token", weight_granularity="tensor")),
        Row("SmoothQuant W8A8 O1", "all", SmoothQuant(alpha=0.5, level="O1")),
        Row("SmoothQuant W8A8 O3", "all", SmoothQuant(alpha=0.5, level="O3")),
        Row("LLM.int8() t=6", "all", LLMInt8(threshold=6.0)),
        Row("LLM.int8() t=6, calibrated outlier columns in fp16", "all", LLMInt8(threshold=6.0, keep_outlier_weights=True)),
    ]


def run(
    model_name: str | None = None,
    *,
    device: str | None = None,
    out: str | Path | None = None,
    n_windows: int = 64,
    seq_len: int = 256,
    batch_size: int = 8,
    calib_n: int = 128,
    calib_len: int = 256,
    group_size: int = 128,
    select: str = "all",
    dtype: torch.dtype = torch.float32,
    progress: bool = True,
) -> tuple[dict[str, list[dict]], Path]:
    """Run every row on the model and its outlier variant; write reports/ptq-<model>/."""
    setup = load_setup(model_name, device, dtype, n_windows, seq_len)
    calibration = calibration_windows(setup.tokenizer, train_text(), calib_n, min(calib_len, setup.windows.shape[1]), seed=0)
    models = {"model": setup.model}
    for factor in OUTLIER_FACTORS:
        variant = copy.deepcopy(setup.model)
        channels = add_outlier_features(variant, OUTLIER_CHANNELS, factor)
        models[f"outlier variant ({OUTLIER_CHANNELS} channels x{factor:g})"] = variant
    rows = [Row(r.name, select if r.select else None, r.method) for r in rows_for(group_size)]
    sections: dict[str, list[dict]] = {}
    bar = tqdm(total=len(rows) * len(models), desc=f"ptq study on {setup.slug}", disable=not progress)
    for name, model in models.items():
        sections[name] = []
        for row in rows:
            sections[name].append(measure_row(model, row, setup.windows, batch_size, calibration))
            bar.update(1)
    bar.close()
    reports = {name: outlier_report(model, calibration[:batch_size], 6.0, batch_size) for name, model in models.items()}
    info = run_info(setup, model_name, sections["model"][0])
    info["calibration"] = f"{len(calibration)} seeded random windows x {calibration.shape[1]} tokens of the training plays"
    info["outlier channels"] = str(channels)
    out_dir = Path(out) if out else Path("reports") / f"ptq-{setup.slug}"
    write_report(out_dir, f"Post-training quantization of {setup.slug}", sections, info, NOTES, _outlier_tables(reports))
    return sections, out_dir


def _outlier_tables(reports: dict[str, list[dict]]) -> list[str]:
    lines = ["## LLM.int8() calibration: outlier features (|x| > 6) per layer, on one calibration batch", ""]
    for name, rows in reports.items():
        lines += [f"{name}:", "", "| layer | features > 6 | tokens with one | of tokens | max abs |", "|---|---:|---:|---:|---:|"]
        lines += [f"| {r['name']} | {r['features']} | {r['tokens']} | {r['total_tokens']} | {r['max_abs']:.1f} |" for r in rows]
        lines.append("")
    return lines


NOTES = [
    "Notes:",
    "- Each row quantizes a fresh copy of the float model; calibrated methods (GPTQ, AWQ, SmoothQuant) see the same",
    "  calibration windows, run block by block (each block calibrated on the outputs of the quantized blocks before it).",
    "- GPTQ and RTN share one storage (packed int codes, float32 scales, uint8 zeros; with act-order the codes sorted by group, and the order).",
    "- W8A8 naive: per-tensor weights and per-tensor dynamic activations, the paper's W8A8 baseline; SmoothQuant O1-O3",
    "  use the same int8 matmul and weight granularity, so the rows differ only by smoothing and activation granularity.",
    "- SmoothQuant: α = 0.5, weights per tensor (as in the paper), scales folded into the LayerNorm before q,k,v and",
    "  the MLP input; the other linears divide their input by s at run time.",
    "- AWQ: scales searched and folded for the norm-fed linears; the others take RTN w4.",
    "- The outlier variant computes the same float function (see lowbit.models.outliers): its baseline equals the model's.",
    "  The channels are planted in every LayerNorm, the final one feeding lm_head included (lm_head untied for it).",
]


def print_tables(sections: dict[str, list[dict]]) -> None:
    for name, rows in sections.items():
        print(f"\n{name}")
        for line in format_table(rows, rows[0]):
            print(line)
