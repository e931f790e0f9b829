"""The marker of a run directory, ``DIR/.condensation-run`` (JSON: tool, version,
command, the run's key, the manifest of every file it wrote, and the owner that
wrote it), and what it proves: a directory is a run of this tool, holding only
the files it wrote.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

from condensation.store.atomic import atomic_write_bytes, jsonable
from condensation.store.owner import read_json_file, valid_owner

MARKER = ".condensation-run"


def run_key(*parts) -> str:
    """A short hash of what determines a run (command, resolved config, options),
    stored as the ``key`` of its marker.

    Args:
        *parts: anything :func:`~condensation.store.atomic.jsonable` can write
            (other objects by ``str``).

    Returns:
        20 hex digits.

    >>> run_key("train", {"lr": 0.1}) == run_key("train", {"lr": 0.1}) != run_key("train")
    True
    """
    text = json.dumps(jsonable(parts), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _files_under(d: Path) -> list[str]:
    """Every non-directory entry under ``d`` (recursively), as relative posix paths."""
    out = []
    for root, dirs, files in os.walk(d):
        rel = Path(root).relative_to(d)
        out += [(rel / f).as_posix() for f in files]
        out += [(rel / x).as_posix() for x in dirs if (Path(root) / x).is_symlink()]
    return sorted(out)


def read_marker(d: str | Path) -> dict | None:
    """The marker of a run directory written by this tool, or None."""
    p = Path(d) / MARKER
    m = read_json_file(p)
    if not isinstance(m, dict) or m.get("tool") != "condensation":
        return None
    if not isinstance(m.get("files"), list):
        return None
    return m


def write_marker_dict(d: Path, m: dict) -> None:
    atomic_write_bytes(d / MARKER, (json.dumps(jsonable(m), indent=2) + "\n").encode())


def write_marker(d: Path, key: str | None = None) -> None:
    """Write ``d/.condensation-run``, listing every file now under ``d`` (the owner
    record of a partial directory made by :func:`run_directory` is kept)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("condensation")
    except PackageNotFoundError:  # a source checkout on PYTHONPATH
        ver = "unknown"
    before = read_marker(d)
    files = [f for f in _files_under(d) if f != MARKER]
    m = {
        "tool": "condensation",
        "version": ver,
        "command": " ".join(["condensation", *sys.argv[1:]]),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "key": key,
        "files": files,
    }
    if before is not None and valid_owner(before.get("owner")):
        m["owner"] = before["owner"]
    write_marker_dict(d, m)


def add_to_manifest(d: str | Path, *relpaths: str) -> None:
    """Record files the tool added to a finished run (e.g. a re-rendered report)."""
    m = read_marker(d)
    if m is None:
        return
    m["files"] = sorted(set(m["files"]) | set(relpaths))
    write_marker_dict(Path(d), m)


def is_run_dir(path: Path) -> bool:
    """A directory this tool wrote (it carries the marker)."""
    return read_marker(path) is not None


def completed_run(out: str | Path, key: str) -> bool:
    """``out`` is a finished run with this ``key`` and only the files it wrote."""
    m = read_marker(out)
    return m is not None and m.get("key") == key and not foreign_files(Path(out))


def foreign_files(d: Path) -> list[str]:
    """Files under the run directory ``d`` that its manifest does not list."""
    m = read_marker(d)
    listed = set(m["files"]) if m is not None else set()
    return [f for f in _files_under(d) if f != MARKER and f not in listed]
