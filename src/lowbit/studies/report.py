"""Writing a study's results: results.json (a list of rows), run.json (what was run),
report.md (a table per section, ratios against that section's baseline row) and a PNG of
model memory against validation loss."""

from __future__ import annotations

import json
from pathlib import Path

MB = 1e6


def format_table(rows: list[dict], baseline: dict) -> list[str]:
    """Markdown table lines; ratios are against the baseline row of the same run."""
    head = "| row | select | model MB | Δ model MB | peak fwd MB | loss | Δ loss % | ppl | Δ ppl % | eval s | quantize s |"
    lines = [head, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        dloss = 100.0 * (r["loss"] - baseline["loss"]) / baseline["loss"]
        dppl = 100.0 * (r["ppl"] - baseline["ppl"]) / baseline["ppl"]
        lines.append(
            f"| {r['name']} | {r['select'] or '-'} | {r['model_bytes'] / MB:.2f} | {(r['model_bytes'] - baseline['model_bytes']) / MB:+.2f} "
            f"| {r['peak_forward_bytes'] / MB:.2f} | {r['loss']:.4f} | {dloss:+.2f} | {r['ppl']:.2f} | {dppl:+.2f} "
            f"| {r['seconds']:.2f} | {r['quantize_seconds']:.2f} |"
        )
    return lines


def plot_memory_vs_loss(sections: dict[str, list[dict]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(sections), figsize=(8 * len(sections) + 4, 6), squeeze=False)
    markers = "osD^vP*Xh<>pd8"
    colors = plt.get_cmap("tab20").colors
    for ax, (section, rows) in zip(axes[0], sections.items()):
        base = rows[0]
        for i, r in enumerate(rows):  # a legend, not labels on the points: the int8 rows sit on top of each other
            ax.scatter(r["model_bytes"] / MB, r["loss"], s=60, marker=markers[i % len(markers)],
                       color="black" if r is base else colors[i % len(colors)], label=r["name"], zorder=3, alpha=0.85)
        ax.axhline(base["loss"], color="gray", linestyle="--", linewidth=1)
        ax.set_xlabel("model memory (MB, parameters + buffers as stored)")
        ax.set_ylabel("validation loss (nats/token)")
        ax.set_title(f"{title} — {section}" if section else title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(out_dir: Path, title: str, sections: dict[str, list[dict]], run: dict, notes: list[str], extra: list[str] = ()) -> None:
    """`sections`: section name -> rows, the first row of each being its baseline."""
    out_dir.mkdir(parents=True, exist_ok=True)
    flat = [dict(r, variant=name) if name else r for name, rows in sections.items() for r in rows]
    (out_dir / "results.json").write_text(json.dumps(flat, indent=2))
    (out_dir / "run.json").write_text(json.dumps(run, indent=2))
    plot_memory_vs_loss(sections, out_dir / "memory_vs_loss.png", title)
    lines = [f"# {title}", "", *[f"- {k}: {v}" for k, v in run.items()], ""]
    for name, rows in sections.items():
        if name:
            lines += [f"## {name}", ""]
        lines += [*format_table(rows, rows[0]), ""]
    lines += [*extra, *notes, "", "![memory vs loss](memory_vs_loss.png)", ""]
    (out_dir / "report.md").write_text("\n".join(lines))
