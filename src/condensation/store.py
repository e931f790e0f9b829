"""Run directories: resolved config, arrays, summary JSON, figures; atomic writes.

A run is assembled in a hidden sibling directory and renamed into place only
when everything is written, so an error or an interrupt leaves no half-written
output behind.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import tomli_w

from condensation.errors import InputError

SUMMARY = "summary.json"


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    return obj


def write_json(path: Path, obj: Any) -> None:
    """JSON with NaN/inf written as null and numpy types as plain ones."""
    path.write_text(json.dumps(_jsonable(obj), indent=2, allow_nan=False) + "\n")


def write_toml(path: Path, obj: dict) -> None:
    path.write_text(tomli_w.dumps(obj))


def save_arrays(path: Path, **arrays: np.ndarray) -> None:
    np.savez_compressed(path, **arrays)


def is_run_dir(path: Path) -> bool:
    return (path / SUMMARY).is_file()


def check_out_dir(out: Path) -> None:
    """Refuse to overwrite a non-empty directory that is not a previous run."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not is_run_dir(out))):
        raise InputError(
            "--out",
            str(out),
            "exists and is not an earlier run directory",
            "choose a new directory (an earlier run directory is replaced)",
        )


@contextmanager
def run_directory(out: str | Path) -> Iterator[Path]:
    """Yield a temporary directory that becomes ``out`` when the block succeeds."""
    out = Path(out)
    check_out_dir(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a single file via a temporary file and a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
