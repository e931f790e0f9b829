"""Loading a run directory back in Python: ``condensation.load_run(DIR)``.

Works for every directory the tool writes (``train``, ``effective``,
``matrix``, ``run`` / experiment, ``reproduce``, and sweep cells, which are
ordinary run directories).  Arrays are opened only when asked for: an ``.npz``
is an :class:`numpy.lib.npyio.NpzFile` (each array read on access), an
``.npy`` is memory-mapped.  Nothing is unpickled (``allow_pickle=False``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from condensation.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib
from condensation.store import SUMMARY, read_marker


class LazyArrays(Mapping):
    """``{file stem: arrays}`` of a run's ``arrays/`` folder, each file opened on first access."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        files = (
            sorted(folder.glob("*.npz")) + sorted(folder.glob("*.npy")) if folder.is_dir() else []
        )
        self._files = {f.stem: f for f in files}
        self._open: dict[str, Any] = {}

    def __getitem__(self, name: str):
        if name not in self._open:
            f = self._files[name]  # KeyError names the missing file
            mmap = "r" if f.suffix == ".npy" else None
            self._open[name] = np.load(f, mmap_mode=mmap, allow_pickle=False)
        return self._open[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._files)

    def __len__(self) -> int:
        return len(self._files)

    def __repr__(self) -> str:
        return f"LazyArrays({list(self._files)})"

    def close(self) -> None:
        for v in self._open.values():
            if hasattr(v, "close"):
                v.close()
        self._open.clear()


@dataclass
class Run:
    """A run directory: ``config`` (the resolved config.toml as a dict; empty where the
    run has none, e.g. an experiment: its parameters are ``summary["params"]``),
    ``summary`` (summary.json), ``arrays`` (lazy, see :class:`LazyArrays`),
    ``figures`` (paths), ``marker`` (the tool's ``.condensation-run``, or None)
    and ``children`` (a reproduce directory's experiments, by name)."""

    path: Path
    kind: str
    config: dict
    summary: dict
    arrays: LazyArrays
    figures: list[Path]
    marker: dict | None
    children: dict[str, Run] = field(default_factory=dict)

    def __repr__(self) -> str:
        extra = f", children={list(self.children)}" if self.children else ""
        return f"Run({str(self.path)!r}, kind={self.kind!r}, arrays={list(self.arrays)}{extra})"


def load_run(directory: str | Path) -> Run:
    """The run in ``directory``: config, summary and lazily loaded arrays.

    >>> run = load_run("runs/eps1e-4")                       # doctest: +SKIP
    >>> run.summary["members"][0]["escape_time"]             # doctest: +SKIP
    >>> run.arrays["snapshots"]["W1"].shape  # (E, K, m1, d)   # doctest: +SKIP
    """
    d = Path(directory)
    if not (d / SUMMARY).is_file():
        raise InputError(
            "DIR",
            str(directory),
            "is not a run directory (no summary.json)",
            "give a directory written by condensation",
        )
    try:
        summary = json.loads((d / SUMMARY).read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise InputError(
            "DIR",
            str(directory),
            f"summary.json is not JSON ({e})",
            "re-run the command that wrote it",
        ) from None
    config: dict = {}
    if (d / "config.toml").is_file():
        config = tomllib.loads((d / "config.toml").read_text())
    children = {}
    if summary.get("kind") == "reproduce":
        children = {n: load_run(d / n) for n in summary.get("experiments", []) if (d / n).is_dir()}
    return Run(
        path=d,
        kind=str(summary.get("kind", "unknown")),
        config=config,
        summary=summary,
        arrays=LazyArrays(d / "arrays"),
        figures=sorted((d / "figures").glob("*.png")) if (d / "figures").is_dir() else [],
        marker=read_marker(d),
        children=children,
    )
