"""Leftovers of earlier runs beside ``DIR``: a partial directory (``.DIR.partial-TOKEN``)
or an earlier run moved aside during a replacement (``.DIR.old-TOKEN``) is removed
or restored only when its own marker proves it was made by this tool (the token
in its name matches the owner record in its marker) and the process that made it
is gone; anything else of a similar name is left alone, with one note.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

from condensation.store.marker import read_marker
from condensation.store.names import hidden_stem, resolve_out
from condensation.store.owner import owner_gone, valid_owner

log = logging.getLogger("condensation")

_noted: set[str] = set()


def note_left_alone(paths: list[Path], why: str) -> None:
    """One note naming the leftovers ``paths`` that were left alone (each path once per
    process, so nested steps of one run do not repeat it)."""
    new = [p for p in paths if str(p) not in _noted]
    if not new:
        return
    _noted.update(str(p) for p in new)
    shown = ", ".join(p.name for p in new[:3]) + (", ..." if len(new) > 3 else "")
    log.warning("left alone %s in %s: %s", shown, new[0].parent, why)


def _replaces(m: Any) -> dict | None:
    """The record of a replacement in a run marker ``m``: the name the earlier run was
    moved aside to, its device and inode, and the owner that moved it."""
    rep = m.get("replaces") if isinstance(m, dict) else None
    if not isinstance(rep, dict) or valid_owner(rep.get("owner")) is None:
        return None
    if not isinstance(rep.get("old"), str) or not all(
        type(rep.get(k)) is int for k in ("dev", "ino")
    ):
        return None
    return rep


def _is_dir_at(p: Path, rep: dict) -> bool:
    """``p`` is the directory the replacement record ``rep`` moved aside (same inode)."""
    try:
        st = os.stat(p, follow_symlinks=False)
    except OSError:
        return False
    return st.st_dev == rep["dev"] and st.st_ino == rep["ino"]


def _own_partial(q: Path, token: str) -> dict | None:
    """The marker of ``q`` when it is a partial directory made by this tool (the owner
    in its marker has the token of its name), else None."""
    if q.is_symlink() or not q.is_dir():
        return None
    m = read_marker(q)
    owner = valid_owner(m.get("owner")) if m is not None else None
    return m if owner is not None and owner["token"] == token else None


def clean_stale(out: str | Path) -> list[Path]:
    """Remove the leftovers beside ``out`` that provably are this tool's and whose
    process is gone: partial directories (``.DIR.partial-TOKEN``, with the owner record
    of that token in their marker) and earlier runs moved aside by a replacement
    (``.DIR.old-TOKEN``, named with their inode in the marker of ``out`` or of the
    interrupted replacement).  When a replacement was cut off between its two renames,
    ``DIR`` is restored from the moved-aside run.  Anything else with a similar name
    is left alone (one note).  Returns what was removed."""
    p = resolve_out(out)
    removed: list[Path] = []
    left: list[Path] = []
    try:
        names = sorted(os.listdir(p.parent))
    except OSError:
        return removed
    stem = hidden_stem(p.name)
    pat = re.compile(rf"^{re.escape(stem)}\.(partial|old)-([0-9a-f]{{16}})$")
    partials: dict[Path, dict] = {}
    olds: list[Path] = []
    proofs: list[tuple[dict, bool]] = []  # (replacement record, recorded by DIR itself)
    for name in names:
        q = p.parent / name
        if not name.startswith(f"{stem}."):
            continue
        mt = pat.match(name)
        if mt is not None and mt.group(1) == "partial":
            m = _own_partial(q, mt.group(2))
            if m is None:
                left.append(q)
            elif owner_gone(m["owner"]):
                partials[q] = m
        elif mt is not None:
            olds.append(q)
        elif name.startswith((f"{stem}.partial", f"{stem}.old")):
            left.append(q)
        rep = _replaces(read_marker(q)) if q.is_dir() and not q.is_symlink() else None
        if rep is not None:
            proofs.append((rep, False))
    rep = _replaces(read_marker(p)) if p.is_dir() and not p.is_symlink() else None
    if rep is not None:
        proofs.append((rep, True))
    for q in olds:
        proof = next(
            (
                (r, by_out)
                for r, by_out in proofs
                if r["old"] == q.name and _is_dir_at(q, r) and owner_gone(r["owner"])
            ),
            None,
        )
        if proof is None:
            left.append(q)
        elif proof[1]:  # DIR is the finished replacement: the earlier run is to go
            shutil.rmtree(q, ignore_errors=True)
            removed.append(q)
            log.warning("removed %s, an earlier run this tool had replaced", q)
        elif not os.path.lexists(p):  # cut off between the renames: put it back
            os.replace(q, p)
            log.warning("restored %s from %s (a replacement was interrupted)", p, q.name)
        else:
            left.append(q)
    for q, m in partials.items():
        shutil.rmtree(q, ignore_errors=True)
        removed.append(q)
        log.warning(
            "removed %s, left by an earlier run (pid %d) that was killed", q, m["owner"]["pid"]
        )
    if left:
        note_left_alone(
            left, "their names look like condensation's leftovers but no marker proves it"
        )
    return removed
