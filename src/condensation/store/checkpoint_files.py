"""The files of a checkpoint and what its ``meta.json`` must hold: names of ours
(``carry-I.TOKEN.npz``, ``records-A-B.TOKEN.npz``, carrying the token of the run
that wrote them) that stay inside the directory, consecutive record chunks, and
a carry of the layout of a freshly built one.  Anything else is refused on
``--resume`` in one line, with the fix: rerun without ``--resume``.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from pathlib import Path

import jax
import numpy as np

from condensation.errors import InputError
from condensation.store.names import inside

META = "meta.json"
# a file of a checkpoint carries the token of the run that wrote it (the token of the
# directory's owner record): a file left by a save cut off by SIGKILL is then provably
# this tool's, and a later save or discard may replace or remove it
FILE_RE = re.compile(r"^(carry-[0-9]+|records-[0-9]+-[0-9]+)\.([0-9a-f]{16})\.npz$")
# what a damaged file raises while it is read
UNREADABLE = (
    OSError,
    ValueError,
    KeyError,
    TypeError,
    IndexError,
    EOFError,
    zipfile.BadZipFile,
    zlib.error,
)


def refuse(directory: Path, problem: str) -> InputError:
    """The one-line refusal of a checkpoint on ``--resume`` (fix: start over)."""
    return InputError("--resume", str(directory), problem, "rerun without --resume to start over")


def our_name(directory: Path, name, token: str | None) -> Path | None:
    """``directory/name`` for a file name of ours with this ``token``
    (``carry-I.TOKEN.npz``, ``records-A-B.TOKEN.npz``) that stays inside ``directory``;
    else None."""
    m = FILE_RE.match(name) if isinstance(name, str) else None
    if m is None or token is None or m.group(2) != token:
        return None
    return inside(directory, name)


def _count(v) -> bool:
    return type(v) is int and v >= 0


def meta_files(directory: Path, meta: dict, token: str):
    """The files a checkpoint's ``meta`` names, checked: ``(index, treedef string,
    carry file, [(records file, start, stop), ...])`` with the record chunks
    consecutive and covering intervals ``0..index``; a malformed meta, or one naming
    a file that is not one of its own, is refused (:func:`refuse`)."""
    index, chunks_, treedef_s = meta.get("index"), meta.get("chunks"), meta.get("treedef")
    if not _count(index) or not isinstance(chunks_, list) or not isinstance(treedef_s, str):
        raise refuse(directory, f"its {META} is malformed (index, chunks or treedef)")
    carry_path = our_name(directory, meta.get("carry"), token)
    paths = []
    at = 0
    for c in chunks_:
        f = our_name(directory, c.get("file"), token) if isinstance(c, dict) else None
        if f is None and isinstance(c, dict) and isinstance(c.get("file"), str):
            raise refuse(
                directory, f"its {META} names a file that is not one of its own ({c['file']!r})"
            )
        if f is None or not _count(c.get("start")) or not _count(c.get("stop")):
            raise refuse(directory, f"its {META} is malformed (a chunk: {c!r:.80})")
        if c["start"] != at or c["stop"] <= at:
            raise refuse(directory, f"its {META} is malformed (chunks not consecutive)")
        at = c["stop"]
        paths.append((f, c["start"], c["stop"]))
    if carry_path is None:
        raise refuse(
            directory,
            f"its {META} names a file that is not one of its own ({meta.get('carry')!r})",
        )
    if at != index + 1:
        raise refuse(directory, "the checkpoint is incomplete")
    return index, treedef_s, carry_path, paths


def load_carry(directory: Path, carry_path: Path, treedef_s: str, carry):
    """The stored carry, placed like the freshly built ``carry`` (same devices);
    refused when its layout (tree, shapes, dtypes) is another."""
    leaves, treedef = jax.tree_util.tree_flatten(carry)
    with open(carry_path, "rb") as fh, np.load(fh, allow_pickle=False) as f:
        saved = [np.array(f[f"leaf{i}"]) for i in range(len(f.files))]
    same = (
        treedef_s == str(treedef)
        and len(saved) == len(leaves)
        and all(
            s.shape == np.shape(x) and s.dtype == np.asarray(x).dtype for s, x in zip(saved, leaves)
        )
    )
    if not same:
        raise InputError(
            "--resume",
            str(directory),
            "the checkpoint's trainer state has another layout (other version or number"
            " of devices)",
            "resume with the same version and CONDENSATION_CPU_DEVICES, or start over",
        )
    placed = [
        jax.device_put(s, x.sharding) if isinstance(x, jax.Array) else s
        for s, x in zip(saved, leaves)
    ]
    return jax.tree_util.tree_unflatten(treedef, placed)


def load_records(directory: Path, paths, names, index: int) -> dict[str, list]:
    """The stored records ``{name: [entry per interval 0..index]}`` from the chunk
    files ``paths`` (:func:`meta_files`); refused when one falls short."""
    loaded: dict[str, list] = {name: [] for name in names}
    for path, start, stop in paths:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as f:
            for name in names:
                loaded[name] += [np.array(f[f"{name}:{j}"]) for j in range(start, stop)]
    for name in names:
        if len(loaded[name]) != index + 1:
            raise refuse(directory, "the checkpoint is incomplete")
    return loaded
