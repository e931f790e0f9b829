"""Loading a run directory back in Python: ``condensation.load_run(DIR)``.

Works for every directory the tool writes (``train``, ``effective``,
``matrix``, ``run`` / experiment, ``reproduce``, and sweep cells, which are
ordinary run directories).  Arrays are opened only when asked for: an ``.npz``
is an :class:`numpy.lib.npyio.NpzFile` (each array read on access), an
``.npy`` is memory-mapped.  Nothing is unpickled (``allow_pickle=False``).
"""

from __future__ import annotations

import json
import os
import stat
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
from condensation.store.rundir import MARKER, SUMMARY, read_marker

# ---- reading a run's files without trusting them -----------------------------------
# A run directory is data: its files may have been hand-edited, truncated or planted.
# Whatever reads one back (load_run, the report) reads through these: a malformed file
# is an InputError naming it, and no path read from a run's files leads outside it.
MAX_JSON_BYTES = 64 * 2**20  # a summary is a few kB; anything this large is not ours
FIX = "re-run the command that wrote it (or restore the file from that run)"


def shown(path: str | Path) -> str:
    """``path`` for a one-line message: control characters written as ``\\xNN``."""
    return "".join(
        c if c.isprintable() or c == " " else f"\\x{ord(c):02x}" for c in os.fspath(path)
    )


def confined(root: str | Path, rel: object, field: str) -> Path:
    """The real path of ``rel`` (a path read from a file of the run ``root``), which
    must lie strictly inside ``root`` once every symlink is resolved.

    Raises InputError (``field`` = ``rel``) for a non-string, an absolute path, a path
    that leaves ``root`` (``..``, a symlink pointing outside) or names ``root`` itself.

    >>> import tempfile; d = tempfile.mkdtemp()
    >>> confined(d, "figures/a.png", "f").name
    'a.png'
    >>> confined(d, "../secret", "f")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    condensation.errors.InputError: f = '../secret': leads outside the run directory ...
    """
    if not isinstance(rel, str) or not rel or "\x00" in rel:
        raise InputError(field, rel, "must be a non-empty path relative to the run", FIX)
    if os.path.isabs(rel):
        raise InputError(
            field, rel, "is an absolute path; a run names only files inside itself", FIX
        )
    base = os.path.realpath(root)
    try:
        real = os.path.realpath(os.path.join(base, rel))
    except (OSError, ValueError):  # a symlink loop on some Pythons, an over-long name
        raise InputError(field, rel, "cannot be resolved inside the run directory", FIX) from None
    if not real.startswith(base.rstrip(os.sep) + os.sep):
        raise InputError(
            field,
            rel,
            f"leads outside the run directory {shown(root)} (or is the directory itself); "
            "nothing outside a run is read",
            FIX,
        )
    return Path(real)


def child(root: str | Path, name: object, field: str) -> Path:
    """The real path of the run ``root``'s direct child ``name`` (an entry of a
    reproduce summary's ``experiments``): one plain name, no separator, not ``.`` or
    ``..``, resolving (symlinks included) strictly inside ``root``; else InputError."""
    if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or os.sep in name:
        raise InputError(
            field,
            name,
            "must name a folder directly inside the run (one plain name)",
            FIX,
        )
    return confined(root, name, field)


def read_bytes(path: Path, field: str, limit: int | None = None) -> bytes:
    """The bytes of the regular file ``path`` (at most ``limit``); InputError when it
    is missing, not a regular file (a folder, a FIFO, a device) or larger."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise InputError(field, shown(path), f"cannot be read ({e.strerror or e})", FIX) from None
    if not stat.S_ISREG(st.st_mode):
        raise InputError(field, shown(path), "is not a regular file", FIX)
    if limit is not None and st.st_size > limit:
        raise InputError(
            field, shown(path), f"is {st.st_size} bytes, more than the {limit} allowed", FIX
        )
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1 if limit is not None else -1)
    except OSError as e:
        raise InputError(field, shown(path), f"cannot be read ({e.strerror or e})", FIX) from None
    if limit is not None and len(data) > limit:
        raise InputError(field, shown(path), f"is more than the {limit} bytes allowed", FIX)
    return data


def read_json(path: Path, field: str) -> Any:
    """The JSON value in the regular file ``path`` (UTF-8, at most
    :data:`MAX_JSON_BYTES`); InputError (``field``) for anything else."""
    data = read_bytes(path, field, MAX_JSON_BYTES)
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        problem = f"is not UTF-8 ({e.reason} at byte {e.start})"
        raise InputError(field, shown(path), problem, FIX) from None
    except (ValueError, RecursionError) as e:  # bad JSON, a 5000-digit integer, deep nesting
        problem = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(field, shown(path), f"is not valid JSON ({problem})", FIX) from None


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

    Nothing outside ``directory`` is read: its files, its ``arrays/`` and
    ``figures/`` and a reproduce run's children (the names its summary lists) must
    resolve inside it, symlinks included; a malformed file is an InputError (one
    line naming the file), never another exception.

    Args:
        directory: a run directory written by condensation (``train``,
            ``effective``, ``matrix``, an experiment or ``reproduce``).

    Returns:
        The :class:`Run`: ``config`` (dict), ``summary`` (dict), ``arrays``
        (:class:`LazyArrays`, ``{file stem: arrays}``), ``figures`` (paths),
        ``marker`` and, for ``reproduce``, ``children`` (runs by name).

    Raises:
        InputError: not a run directory, a malformed file, or a path that leads
            outside it.

    >>> import json, pathlib, tempfile
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "summary.json").write_text(json.dumps({"kind": "train", "loss": 0.25}))
    >>> run = load_run(d)
    >>> run.kind, run.summary["loss"], len(run.arrays)
    ('train', 0.25, 0)
    >>> import shutil; shutil.rmtree(d)

    On a real run: ``load_run("runs/eps1e-4").arrays["snapshots"]["W1"].shape`` is
    ``(E, K, m1, d)``.
    """
    return _load(Path(directory), str(directory))


def _load(d: Path, given: str) -> Run:
    if not d.is_dir() or not os.path.lexists(d / SUMMARY):
        raise InputError(
            "DIR",
            shown(given),
            "is not a run directory (no summary.json)",
            "give a directory written by condensation",
        )
    where = shown(d / SUMMARY)
    summary = read_json(confined(d, SUMMARY, where), where)
    if not isinstance(summary, dict):
        raise InputError(
            where,
            type(summary).__name__,
            "must be a JSON object",
            "re-run the command that wrote it",
        )
    config: dict = {}
    if os.path.lexists(d / "config.toml"):
        cfile = shown(d / "config.toml")
        text = read_bytes(confined(d, "config.toml", cfile), cfile, MAX_JSON_BYTES)
        try:
            config = tomllib.loads(text.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError) as e:
            problem = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise InputError(
                cfile, "config.toml", f"is not TOML ({problem})", "re-run the command that wrote it"
            ) from None
    marker = None
    if os.path.lexists(d / MARKER):
        confined(d, MARKER, shown(d / MARKER))
        marker = read_marker(d)
    children = {}
    if summary.get("kind") == "reproduce":
        names = summary.get("experiments", [])
        if not isinstance(names, list):
            raise InputError(
                f"{where} experiments", names, "must be a list of names", "re-run reproduce"
            )
        for i, n in enumerate(names):
            sub = child(d, n, f"{where} experiments[{i}]")  # strictly inside d
            if sub.is_dir():
                children[n] = _load(d / n, os.path.join(given, n))
    arrays = d / "arrays"
    figures = sorted((d / "figures").glob("*.png")) if (d / "figures").is_dir() else []
    lazy = LazyArrays(arrays)
    for f in [*lazy._files.values(), *figures]:  # a symlink among them: refused
        confined(d, os.path.relpath(f, d), shown(f))
    return Run(
        path=d,
        kind=str(summary.get("kind", "unknown")),
        config=config,
        summary=summary,
        arrays=lazy,
        figures=figures,
        marker=marker,
        children=children,
    )
