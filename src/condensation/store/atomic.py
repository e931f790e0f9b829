"""Writing files safely: JSON / TOML / arrays, and one file replaced atomically.

Files get the permissions of the user's umask (0644 under the usual 022), not
``tempfile``'s private 0600.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import tomli_w

from condensation.store.names import NAME_MAX, hidden_stem


def jsonable(obj: Any) -> Any:
    """``obj`` with numpy types as plain ones, tuples as lists, keys as strings and
    non-finite floats as None, for :func:`json.dumps`.

    >>> jsonable({1: (np.float64(0.5), np.inf, np.int64(2))})
    {'1': [0.5, None, 2]}
    """
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
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
    path.write_text(json.dumps(jsonable(obj), indent=2, allow_nan=False) + "\n")


def write_toml(path: Path, obj: dict) -> None:
    """``obj`` written as TOML (a resolved config)."""
    path.write_text(tomli_w.dumps(obj))


def save_arrays(path: Path, **arrays: np.ndarray) -> None:
    """The named ``arrays`` in one ``.npz``, stored without compression: float
    weights hardly compress (their mantissas look random; 4 % smaller for 23x
    the write time at width 300), and the post-processing of a wide run should
    cost little next to its training."""
    np.savez(path, **arrays)


def current_umask() -> int:
    """This process's umask (read without changing it for longer than a moment)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def chmod_umask(path: Path, directory: bool) -> None:
    """Give ``path`` the permissions a plain ``open`` / ``mkdir`` would (umask)."""
    os.chmod(path, (0o777 if directory else 0o666) & ~current_umask())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a single file via a temporary file and a rename (umask permissions)."""
    path = Path(path)
    prefix = f".{path.name}."
    if len(os.fsencode(prefix)) > NAME_MAX - 16:
        prefix = hidden_stem(path.name) + "."
    fd, tmp = tempfile.mkstemp(prefix=prefix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        chmod_umask(Path(tmp), directory=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
