"""The commands the README and the documentation show, and the quick variants in
which they are run: by the site's build (``docs/_scripts/hooks.py``) and by the
tests (``tests/test_readme.py``).  One list, so a command added to any page is run
by both without touching either.

A command is a line of a ``bash`` block whose first word is a ``condensation``
program (``.venv/bin/condensation``); ``QUICK`` says, per subcommand, what is
appended to make it fast, and ``runs/...`` output paths are moved under a scratch
folder (never into the repository).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"

# Appended per command (the first word after `condensation`) to make it quick.
STEPS = [
    "--set",
    "train.steps=12",
    "--set",
    "train.snapshots=2",
    "--set",
    "train.linear_snapshots=1",
]
QUICK: dict[str, list[str]] = {
    "train": STEPS,
    "effective": STEPS,
    "matrix": STEPS,
    "run": ["--quick"],
    "reproduce": [],  # already --quick where shown; the default tests run one experiment
    "report": [],
    # in this process; a `--scheduler` example's cluster is replaced by it too (the
    # slow tests/sweep/test_sweep_slow.py::test_external_scheduler_and_two_workers
    # starts `dask scheduler` and `dask worker` as the sweep how-to's recipe does)
    "sweep": ["--workers", "0"],
}
# Quick experiments of `reproduce --quick` in the default tests and the site's build.
REPRODUCE_DEFAULT_ONLY = ["condensation-three-layer"]

FENCE = re.compile(r"^```(\w*)([^\n]*)\n(.*?)^```", re.S | re.M)


def code_blocks(text: str) -> list[tuple[str, str, str]]:
    """``(language, attributes, body)`` of every fenced code block (attributes: the
    rest of the opening line, e.g. ``exec="on" session="tour"``)."""
    return [(m[1], m[2].strip(), m[3]) for m in FENCE.finditer(text)]


def is_command(words: list[str]) -> bool:
    return bool(words) and Path(words[0]).name == "condensation"


def commands_in(text: str) -> list[list[str]]:
    """Every ``condensation`` command line of the text's bash blocks, as argv (after
    the program name), comments dropped, each once."""
    out: list[list[str]] = []
    for lang, _, body in code_blocks(text):
        if lang not in ("bash", "sh", "console"):
            continue
        for line in body.splitlines():
            if "condensation" not in line:
                continue
            words = shlex.split(line, comments=True)
            if is_command(words) and words[1:] not in out:
                out.append(words[1:])
    return out


def pages() -> list[Path]:
    """README.md and every page of the site (docs/**/*.md), in a fixed order."""
    return [README, *sorted(p for p in DOCS.rglob("*.md") if "_scripts" not in p.parts)]


def all_commands() -> list[list[str]]:
    """Every command of the README and the site, each once (first page first)."""
    out: list[list[str]] = []
    for page in pages():
        out += [argv for argv in commands_in(page.read_text()) if argv not in out]
    return out


def quick_variant(argv: list[str], scratch: Path) -> list[str]:
    """``argv`` with its quick additions, every ``runs/...`` path under ``scratch`` and
    every ``configs/...`` argument in the repository (a ``--set`` value stays
    relative to the working directory); a ``--scheduler`` is dropped (the
    quick variant runs the sweep in this process)."""
    moved = [str(scratch / a) if a.startswith("runs/") else a for a in argv]
    moved = [str(ROOT / a) if a.startswith("configs/") else a for a in moved]
    if "--scheduler" in moved:
        i = moved.index("--scheduler")
        del moved[i : i + 2]
    return moved + QUICK.get(argv[0], [])
