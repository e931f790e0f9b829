"""Where a run's files go: ``--out`` resolved, hidden siblings of ``DIR`` (``.DIR.KIND``)
within the system's name limits, and file names that stay inside a directory.

Hidden sibling names fit the system's 255-byte limit whatever the length of
``DIR``'s name: a name too long keeps its beginning and gets a short hash
(``.LONGNAME~1a2b3c4d.partial-TOKEN``).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

NAME_MAX = 255  # bytes in one path component (Linux, macOS)
PATH_MAX = 4096  # bytes in a whole path
# room kept in a path for the files a run writes inside its directory
# (``arrays/snapshots.npz``, ``.DIR.checkpoint/records-1-20.npz.TOKEN.tmp``, ...)
INNER_PATH_BYTES = 160
_SUFFIX_BYTES = 32  # the longest suffix a hidden sibling gets (".partial-" + 16 hex)


def resolve_out(out: str | Path) -> Path:
    """``out`` as an absolute path (symlinks kept), so that ``.`` has a name."""
    return Path(os.path.abspath(os.fspath(out)))


def hidden_stem(name: str) -> str:
    """``.NAME``, or for a name too long to take a suffix within ``NAME_MAX`` its
    beginning and a short hash of the whole: ``.NAMEBEGINNING~1a2b3c4d``."""
    stem = "." + name
    raw = os.fsencode(stem)
    if len(raw) <= NAME_MAX - _SUFFIX_BYTES:
        return stem
    digest = hashlib.sha256(os.fsencode(name)).hexdigest()[:8]
    cut = raw[: NAME_MAX - _SUFFIX_BYTES - 9]
    for back in range(4):  # end on a whole UTF-8 character
        try:
            text = cut[: len(cut) - back].decode("utf-8")
            break
        except UnicodeDecodeError:
            continue
    else:
        text = os.fsdecode(cut)
    return f"{text}~{digest}"


def hidden_sibling(out: str | Path, kind: str, token: str | None = None) -> Path:
    """The hidden sibling ``.DIR.KIND`` (or ``.DIR.KIND-TOKEN``) of the run directory
    ``out``; its name fits ``NAME_MAX`` (see :func:`hidden_stem`)."""
    p = resolve_out(out)
    tail = kind if token is None else f"{kind}-{token}"
    return p.parent / f"{hidden_stem(p.name)}.{tail}"


def inside(directory: str | Path, name: Any) -> Path | None:
    """``directory/name`` when ``name`` (read from one of our own files) is a plain file
    name that stays inside ``directory`` (no separator, no ``..``, not absolute, not a
    link out of it); else None."""
    if not isinstance(name, str) or name in ("", ".", ".."):
        return None
    if "/" in name or (os.altsep and os.altsep in name) or "\0" in name:
        return None
    d = Path(directory)
    p = d / name
    try:
        real_d = os.path.realpath(d)
        if os.path.dirname(os.path.realpath(p)) != real_d:
            return None
    except (OSError, ValueError):
        return None
    return p
