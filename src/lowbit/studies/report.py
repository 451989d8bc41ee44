"""Writing a study's results: results.json (a list of rows), report.md, and a memory-vs-loss chart."""

from __future__ import annotations

import json
from pathlib import Path

MB = 1e6


def format_table(rows: list[dict], baseline: dict) -> list[str]:
    """Markdown table lines; ratios are against the baseline row of the same run."""
    head = "| row | select | model MB | Δ model MB | peak fwd MB | loss | Δ loss % | ppl | eval s | quantize s |"
    lines = [head, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        dloss = 100.0 * (r["loss"] - baseline["loss"]) / baseline["loss"]
        lines.append(
            f"| {r['name']} | {r['select'] or '-'} | {r['model_bytes'] / MB:.2f} | {(r['model_bytes'] - baseline['model_bytes']) / MB:+.2f} "
            f"| {r['peak_forward_bytes'] / MB:.2f} | {r['loss']:.4f} | {dloss:+.2f} | {r['ppl']:.2f} | {r['seconds']:.2f} | {r['quantize_seconds']:.2f} |"
        )
    return lines


def plot_memory_vs_loss(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 6))
    base = rows[0]
    for r in rows:
        ax.scatter(r["model_bytes"] / MB, r["loss"], s=40, color="black" if r is base else "tab:blue", zorder=3)
        ax.annotate(r["name"], (r["model_bytes"] / MB, r["loss"]), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.axhline(base["loss"], color="gray", linestyle="--", linewidth=1, label=f"baseline loss {base['loss']:.4f}")
    ax.set_xlabel("model memory (MB, parameters + buffers as stored)")
    ax.set_ylabel("validation loss (nats/token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(out_dir: Path, title: str, rows: list[dict], run: dict, notes: list[str]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(rows, indent=2))
    (out_dir / "run.json").write_text(json.dumps(run, indent=2))
    plot_memory_vs_loss(rows, out_dir / "memory_vs_loss.png", title)
    lines = [f"# {title}", "", *[f"- {k}: {v}" for k, v in run.items()], "", *format_table(rows, rows[0]), "", *notes, "",
             "![memory vs loss](memory_vs_loss.png)", ""]
    (out_dir / "report.md").write_text("\n".join(lines))
