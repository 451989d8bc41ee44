"""What a bench leaves in its output dir: results.json, its plot, and report.md (title, the command,
how to read the numbers, the table, the plot)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path


def write(out_dir: Path, result: dict, title: str, how_to_read: str, table: list[str],
          plot: Callable[[dict, Path], None], png: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(result, indent=2))
    plot(result, out_dir / png)
    lines = [f"# {title}", "", f"Command: `{result['command']}`", "", how_to_read, "", *table, "", f"![{png}]({png})", ""]
    (out_dir / "report.md").write_text("\n".join(lines))


def first_line(e: BaseException, limit: int = 160) -> str:
    """An exception's first line (its type's name when it has no message), cut to `limit`: for a row."""
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:limit]
