"""The one validation layer for what users hand in: files, numbers, seeds, sizes.

Every reader of user input goes through these functions, at load time and
before any compute, and every failure is one :class:`~condensation.errors.InputError`
naming the field, the value and the fix:

- **files**: TOML configs must be UTF-8; ``.npz`` archives are opened without
  pickle (object arrays, corrupt or empty archives, a renamed ``.npy`` are
  refused); CSV is parsed here, strictly (:func:`load_csv`: a BOM dropped, a header
  only when its first row has no numeric cell, every other cell a finite decimal
  number), so an error names the row, the column and the cell;
- **``--set`` values**: one TOML value, read entirely (:func:`set_value`);
- **arrays**: real numbers only (complex, text, object arrays refused), finite,
  and at most :data:`MAX_ABS` in magnitude, so that squares and products of
  inputs stay representable in float64;
- **integers**: one rule whatever the TOML type (:func:`as_int`: a float only when
  exactly integral, ``|v| <= MAX_INT`` either way);
- **seeds**: one rule everywhere, an integer in ``[0, 2**32)`` (:func:`check_seed`);
- **sizes**: integers are bounded (:data:`MAX_INT`) and a run's memory (its
  working set plus the snapshots it keeps) is estimated before compute and
  refused above :func:`memory_limit` (half the available memory, or
  ``CONDENSATION_MEMORY_LIMIT`` bytes, e.g. ``8e9``) with the estimate, naming the
  input that makes it too large (:func:`check_memory`);
- **scales**: an init scale below the square root of the training dtype's
  smallest normal number is refused (squared norms would underflow to 0); one
  whose layer product falls below the dtype's smallest normal number (XLA
  flushes subnormals to zero on CPU) gets an :class:`UnderflowWarning`.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
import sys
import warnings
import zipfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from condensation.errors import InputError
from condensation.training.snapshots import (
    SAVE_MODES,
    kept_indices,
    network_layer_bytes,
    stored_bytes,
)

MAX_ABS = 1e100  # largest magnitude of a value in a user array (squares stay finite)
MAX_INT = 2**53  # largest integer a config key may hold (exact as a float64)
SEED_LIMIT = 2**32  # seeds are integers in [0, SEED_LIMIT)
MAX_STEPS = 10**9  # most GD steps of one run
MAX_SNAPSHOTS = 100_000  # most log-spaced (and, separately, equally spaced) snapshots
MAX_DEPTH = 16  # most weight matrices / factors a network or a factorisation may have
MEMORY_FRACTION = 0.5  # share of the available memory a run may plan to use
MEMORY_ENV = "CONDENSATION_MEMORY_LIMIT"


class UnderflowWarning(UserWarning):
    """An init scale whose layer products fall below the dtype's smallest normal."""


# ---- numbers -------------------------------------------------------------------------
def check_seed(field: str, value: object) -> int:
    """The one seed rule: an integer ``0 <= seed < 2**32``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(field, value, "a seed must be an integer", "give a seed in [0, 2**32)")
    if not 0 <= int(value) < SEED_LIMIT:
        raise InputError(
            field, value, f"a seed must be in [0, {SEED_LIMIT})", "give a seed in [0, 2**32)"
        )
    return int(value)


def as_int(field: str, value: object) -> int:
    """The one integer rule for every integer a user writes (config keys, ``--set``,
    experiment parameters), whatever its TOML type: an integer, or a float that is
    exactly integral (``1e4``, ``-0.0``), and ``|v| <= MAX_INT`` either way (a float
    as large as ``1e300`` is as much refused as the integer it stands for).  Refused:
    booleans, strings, ``3.5``, ``nan``, ``inf``.

    >>> as_int("train.steps", 1e4), as_int("data.seed", -0.0)
    (10000, 0)
    """
    name = field.rsplit(".", 1)[-1]
    if isinstance(value, (float, np.floating)) and not isinstance(value, bool):
        if not (math.isfinite(value) and float(value).is_integer()):
            raise InputError(
                field,
                value,
                "expected an integer (not a whole number)",
                f"write {name} = <integer>",
            )
        number = int(value)
    elif isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        number = int(value)
    else:
        raise InputError(field, value, "expected an integer", f"write {name} = <integer>")
    if abs(number) > MAX_INT:
        raise InputError(field, value, "integer too large", f"give |{name}| <= 2**53")
    return number


def check_int(field: str, value: int, *, low: int = 0, high: int = MAX_INT) -> int:
    if not low <= value <= high:
        raise InputError(
            field, value, f"must be in [{low}, {high}]", f"give {low} <= value <= {high}"
        )
    return value


def dtype_limits(dtype: str) -> np.finfo:
    return np.finfo(np.float32 if dtype == "float32" else np.float64)


def check_scales(
    field: str,
    scales: Iterable[float],
    depth: int,
    dtype: str,
    warn: bool = True,
    shown: object = None,
) -> None:
    """Init scales: non-zero in ``dtype``; a warning where ``eps^(depth-1)`` (the first
    layer's gradient scale) falls below the dtype's smallest normal number."""
    fi = dtype_limits(dtype)
    for eps in scales:
        floor = math.sqrt(float(fi.smallest_normal))
        if not eps >= floor:
            raise InputError(
                field,
                eps if shown is None else shown,
                f"eps = {eps:.3g} is below {floor:.3g}, the square root of {dtype}'s "
                "smallest normal number: squared norms of the initial weights underflow "
                "to 0 (and the weights themselves, below the smallest normal)",
                f"give a scale eps >= {floor:.3g}",
            )
        if eps > MAX_ABS:
            raise InputError(field, eps, f"must be <= {MAX_ABS:g}", "give a smaller init scale")
        log_prod = (depth - 1) * math.log10(eps)
        if warn and log_prod < math.log10(float(fi.smallest_normal)):
            warnings.warn(
                f"{field} = {eps:g}: eps^{depth - 1} = 1e{log_prod:.0f} is below {dtype}'s "
                f"smallest normal {float(fi.smallest_normal):.3g}; gradients flush to zero "
                "(members that never move are marked status 'underflow')",
                UnderflowWarning,
                stacklevel=2,
            )


def real_array(field: str, name: str, a: np.ndarray) -> np.ndarray:
    """A user array as float64: real numbers only, finite, ``|v| <= MAX_ABS``."""
    a = np.asarray(a)
    if a.dtype.kind == "c":
        raise InputError(field, f"{name} ({a.dtype})", "complex values", "save real numbers only")
    if a.dtype.kind not in "biuf":
        raise InputError(
            field, f"{name} ({a.dtype})", "not an array of numbers", "save a numeric array"
        )
    out = a.astype(np.float64)
    finite = np.isfinite(out)
    for bad, problem, fix in (
        (~finite, "non-finite (NaN or infinite)", "give finite values for every entry"),
        (finite & (np.abs(out) > MAX_ABS), f"above {MAX_ABS:g} in magnitude", "rescale the data"),
    ):
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise InputError(
                field,
                f"{name}{list(idx)} = {float(out[idx])}",
                f"{int(bad.sum())} of {name}'s entries are {problem}",
                fix,
            )
    return out


# ---- --set values --------------------------------------------------------------------
# str.splitlines' line boundaries (a bare word holding one is refused)
_LINE_BREAKS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")


def set_value(item: str, rhs: str) -> object:
    """The value of a ``--set`` item, ``rhs`` (the text after ``=``) read as one TOML
    value, entirely; text that is not TOML is taken whole as a string (a bare word).

    Never silently shortened: ``rhs`` must be one TOML value and nothing else (a
    line break followed by ``key = ...`` or ``[table]`` would be read as another
    key and dropped), must not end in a ``#`` comment (TOML drops it), and a bare
    word must be one line.  Each of these is an :class:`InputError` naming the
    item.  A TOML value may span lines (a multi-line array, a ``\"\"\"`` string).

    >>> set_value("train.lr=0.1", "0.1"), set_value("data.dataset=sin", "sin")
    (0.1, 'sin')
    """
    rhs = rhs.strip()
    fix = "give one value (a newline inside a TOML string is written \\n, e.g. 'a\\nb')"
    try:
        doc = tomllib.loads(f"v = {rhs}")
    except ValueError:  # TOMLDecodeError, or an integer too long to convert
        if any(c in _LINE_BREAKS for c in rhs):
            raise InputError(
                "--set", item, "holds a line break and is not one TOML value", fix
            ) from None
        return rhs  # a bare word is taken as a string
    if set(doc) != {"v"}:
        raise InputError(
            "--set",
            item,
            f"more than one TOML value ({', '.join(sorted(set(doc) - {'v'}))} after a line "
            "break would be dropped)",
            fix,
        )
    if "#" in rhs and _is_toml(f"v = {rhs}x"):  # "x" can only extend a trailing comment
        raise InputError(
            "--set",
            item,
            "ends in a TOML comment ('#' and after), which would be dropped",
            "quote a value that holds '#' (e.g. 'a#b'), or remove the comment",
        )
    return doc["v"]


def _is_toml(text: str) -> bool:
    try:
        tomllib.loads(text)
    except ValueError:
        return False
    return True


# ---- files ---------------------------------------------------------------------------
def read_text(path: str | Path, field: str, what: str) -> str:
    """A text file as UTF-8 (a missing file, a directory, bytes that are not UTF-8: one line)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(field, str(p), "no such file", f"give the path of {what}")
    try:
        return p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(
            field, str(p), f"not UTF-8 text (byte {e.start})", f"save {what} as UTF-8"
        ) from None
    except OSError as e:
        raise InputError(field, str(p), f"cannot read ({e.strerror})", "check the file") from None


def load_npz(path: str | Path, field: str) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` archive, opened without pickle."""
    p = Path(path)
    if not p.is_file():
        raise InputError(field, str(path), "no such file", "give an existing .npz file")
    fix = "save the arrays with numpy.savez"
    try:
        with open(p, "rb") as fh:  # closed on every path (np.load leaks on a bad file)
            try:
                f = np.load(fh, allow_pickle=False)
            except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
                raise InputError(
                    field, str(path), f"not a readable .npz archive ({e})", fix
                ) from None
            if not isinstance(f, np.lib.npyio.NpzFile):
                raise InputError(field, str(path), "a single .npy array, not an .npz archive", fix)
            try:
                with f:
                    arrays = {k: f[k] for k in f.files}
            except ValueError as e:  # object arrays need pickle
                msg = (
                    "holds object arrays (they need pickle, which is not used)"
                    if "pickle" in str(e)
                    else f"corrupt array ({e})"
                )
                raise InputError(field, str(path), msg, fix + " from numeric arrays") from None
            except (OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
                raise InputError(field, str(path), f"corrupt .npz archive ({e})", fix) from None
    except OSError as e:
        raise InputError(
            field, str(path), f"cannot read ({e.strerror})", "check the file"
        ) from None
    if not arrays:
        raise InputError(field, str(path), "the archive holds no arrays", fix)
    return arrays


# A CSV number: decimal notation only (ASCII digits, an optional sign, point and
# exponent).  Python's float() also takes "1_000", non-ASCII digits and "nan"/"inf":
# none of those is read as a number here (nan/inf are recognised, then refused).
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
_NON_FINITE = re.compile(r"[+-]?(?:nan|inf|infinity)", re.ASCII | re.IGNORECASE)
_CSV_SPACE = " \t"  # the whitespace around a cell that is ignored


def _numeric(cell: str) -> bool:
    """Whether a cell is written as a number (decimal, or nan/inf: numbers, refused later)."""
    s = cell.strip(_CSV_SPACE)
    return bool(_DECIMAL.fullmatch(s) or _NON_FINITE.fullmatch(s))


def _blank(cells: list[str]) -> bool:
    """An empty line (the csv module gives [] or one whitespace-only cell)."""
    return not cells or (len(cells) == 1 and not cells[0].strip(_CSV_SPACE))


def csv_cell(field: str, path: str, row: int, col: int, cell: str, *, width: int = 2) -> float:
    """One data cell of a CSV file as a float, under the same rules as
    :func:`real_array` (finite, ``|v| <= MAX_ABS``); anything else is an
    :class:`InputError` naming the row, the column and the cell.

    Spaces and tabs around the cell are ignored; the cell must then be a decimal
    number (``3``, ``-0.5``, ``.5``, ``1e-3``).  Refused: an empty cell, ``nan``
    and ``inf``, hexadecimal (``0x10``), ``1_000``, non-ASCII digits, a number
    that overflows to infinity (``1e400``) or exceeds ``MAX_ABS``.
    """
    s = cell.strip(_CSV_SPACE)
    where = f"row {row}, column {col}"
    if _DECIMAL.fullmatch(s):
        v = float(s)
        if not math.isfinite(v) or abs(v) > MAX_ABS:
            raise InputError(
                field,
                path,
                f"{where}: {s[:40]!r} is above {MAX_ABS:g} in magnitude",
                "rescale the data",
            )
        return v
    if _NON_FINITE.fullmatch(s):
        raise InputError(
            field,
            path,
            f"{where}: {s!r} is non-finite (NaN or infinite)",
            "give finite values for every entry",
        )
    what = "an empty field" if not s else f"{s[:40]!r} is not a number"
    if s and width == 1 and any(c in s for c in ";\t |"):
        hint = "separate columns with commas"
    elif row == 1:
        hint = "give a decimal number in every field (a header row has no numeric field)"
    else:
        hint = "give a decimal number in every field (e.g. 3, -0.5, 1e-3)"
    raise InputError(field, path, f"{where}: {what}", hint)


def load_csv(path: str | Path, field: str) -> np.ndarray:
    """A numeric CSV as an ``(n, c)`` float64 array, read strictly.

    - UTF-8 text, comma-separated, CSV quoting (a quoted cell is read as the text
      inside the quotes; text after a closing quote, or a quote never closed, is
      an error); a UTF-8 byte-order mark at the start is dropped.
    - Empty lines are skipped anywhere; a line of empty cells (``,,``) is not.
    - The first non-empty row is a header when every one of its cells is
      non-numeric (an empty cell counts as non-numeric); it must have as many
      columns as the data.  One numeric cell (``1,2,oops``, ``0x10,2,3``) makes
      it a data row, so its other cells are errors.
    - Every data cell is read by :func:`csv_cell` (decimal numbers only, finite,
      ``|v| <= MAX_ABS``: the rules of :func:`real_array` for ``.npz`` files).

    Every error names the row and the column (1-based, counting the header and
    empty lines) and the cell."""
    text = read_text(path, field, "a comma-separated .csv file")
    if "\x00" in text:
        raise InputError(field, str(path), "binary data, not CSV text", "give a text CSV file")
    text = text.removeprefix("\ufeff")  # the byte-order mark some editors write
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)  # "2"3 is not 23
    try:
        rows = list(reader)
    except csv.Error as e:  # e.g. a stray carriage return or an unclosed quote
        raise InputError(
            field, str(path), f"row {reader.line_num}: not CSV ({e})", "give a plain CSV file"
        ) from None
    numbered = [(i + 1, r) for i, r in enumerate(rows) if not _blank(r)]
    header = None
    if numbered and not any(_numeric(c) for c in numbered[0][1]):
        header, numbered = numbered[0], numbered[1:]
    if not numbered:
        raise InputError(field, str(path), "no data rows", "give one row per sample, y last")
    width = len(numbered[0][1])
    if header is not None and len(header[1]) != width:
        raise InputError(
            field,
            str(path),
            f"the header (row {header[0]}) has {len(header[1])} columns, "
            f"the first data row has {width}",
            "give the header one name per column, or remove it",
        )
    out = np.empty((len(numbered), width))
    for j, (row, cells) in enumerate(numbered):
        if len(cells) != width:
            raise InputError(
                field,
                str(path),
                f"row {row} has {len(cells)} columns, the first data row has {width}",
                "give every row the same number of comma-separated columns",
            )
        for col, cell in enumerate(cells, start=1):
            out[j, col - 1] = csv_cell(field, str(path), row, col, cell, width=width)
    return out


# ---- memory --------------------------------------------------------------------------
def available_memory() -> float:
    """Bytes of memory available now (MemAvailable; physical memory where unknown)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 8e9


def memory_limit() -> float:
    """The cap on a run's estimated memory: ``CONDENSATION_MEMORY_LIMIT`` bytes, else
    :data:`MEMORY_FRACTION` of the available memory."""
    raw = os.environ.get(MEMORY_ENV)
    if raw:
        try:
            v = float(raw)
        except ValueError:
            v = -1.0
        if not (math.isfinite(v) and v > 0):
            raise InputError(MEMORY_ENV, raw, "expected a positive number of bytes", "e.g. 8e9")
        return v
    return MEMORY_FRACTION * available_memory()


def _gib(b: float) -> str:
    return f"{b / 2**30:.3g} GiB"


class Factor(NamedTuple):
    """One input a memory estimate grows with: the config ``field`` to name, its
    ``value`` as given, and the estimate's arguments with it at its default and at
    its smallest value."""

    field: str
    value: object
    default: dict[str, Any]
    smallest: dict[str, Any]
    note: str = ""  # what the value stands for, when not plain (e.g. a file's rows)


def check_memory(
    parts_of: Callable[..., dict[str, float]],
    args: dict[str, Any],
    factors: Sequence[Factor],
) -> float:
    """Refuse a run whose estimated bytes exceed :func:`memory_limit`, naming the
    input that makes it too large.

    ``parts_of(**args)`` is the estimate (part name -> bytes).  The field named is
    the :class:`Factor` whose return to its default saves the most bytes (the one
    raised furthest above what the estimate was sized for); where none saves
    anything (every factor at or below its default), the one whose reduction to its
    smallest value saves the most.  The first listed wins a tie; the fix lists the
    other factors.  Returns the estimated bytes when they fit.
    """
    parts = parts_of(**args)
    total = float(sum(parts.values()))
    cap = memory_limit()
    if total <= cap:
        return total

    def saved(at: dict[str, Any]) -> float:
        return total - float(sum(parts_of(**{**args, **at}).values()))

    worst = max(factors, key=lambda f: saved(f.default))  # max keeps the first of ties
    if not saved(worst.default) > 0:
        worst = max(factors, key=lambda f: saved(f.smallest))
    detail = ", ".join(f"{k} {_gib(v)}" for k, v in parts.items())
    note = f" ({worst.note})" if worst.note else ""
    others = list(dict.fromkeys(f.field for f in factors if f.field != worst.field))
    raise InputError(
        worst.field,
        worst.value,
        f"the run needs about {_gib(total)} ({detail}), more than the {_gib(cap)} allowed "
        f"(half the available memory, or {MEMORY_ENV}); {worst.field}{note} is the "
        "largest factor",
        f"use a smaller {worst.field} (the estimate also grows with {', '.join(others)})"
        if others
        else f"use a smaller {worst.field}",
    )


def network_memory(
    n: int, d_in: int, widths: Sequence[int], members: int, n_snapshots: int, dtype: str
) -> dict[str, float]:
    """Estimated bytes of a network run: data, the working set of one GD step (weights,
    gradients, escape copy and activations of every member), the snapshots kept on the
    host, and the metrics' per-snapshot cosine matrices."""
    item = 4 if dtype == "float32" else 8
    dims = [d_in, *widths, 1]
    weights = sum(dims[k] * dims[k + 1] for k in range(len(dims) - 1))
    acts = n * sum(dims)
    m1 = widths[0] if widths else 1
    return {
        "data": 8.0 * n * (d_in + 1),
        "working set": float(item) * members * (5 * weights + 4 * acts),
        "snapshots": float(item) * members * n_snapshots * weights * 2,
        "metrics": 8.0 * 4 * m1 * m1,
    }


def snapshot_count(steps: int | str, snapshots: int, linear: int) -> int:
    """An upper bound on the number of snapshots a ``[train]`` section keeps.
    ``steps = "auto"`` (a horizon not resolved yet, e.g. ``effective`` without
    ``--compare-gd``, which trains nothing): the bound the snapshot counts give."""
    if not isinstance(steps, int):  # "auto": no horizon to cap the count
        return snapshots + linear + 2
    return min(snapshots + linear + 2, steps + 1)


def check_save(field: str, value: str) -> str:
    """``[train] save``: one of :data:`condensation.training.snapshots.SAVE_MODES`."""
    if value not in SAVE_MODES:
        raise InputError(
            field,
            value,
            "unknown save mode",
            'use save = "bounded" (default: parameter snapshots within a fixed budget) '
            'or "full" (every layer at every snapshot)',
        )
    return value


def _members(cfg) -> tuple[int, list[Factor]]:
    """An ensemble's member count (seeds x scales) and its factors, for the memory check."""
    seeds = list(cfg.init.seeds) if cfg.init.seeds is not None else [cfg.init.seed]
    scales = list(cfg.scales)
    factors = []
    if len(seeds) > 1:
        one = {"members": len(scales)}
        factors.append(Factor("init.seeds", seeds, one, one, f"{len(seeds)} seeds"))
    if cfg.init.scales is not None and len(scales) > 1:
        one = {"members": len(seeds)}
        factors.append(Factor("init.scales", scales, one, one, f"{len(scales)} scales"))
    return len(seeds) * len(scales), factors


def _snapshot_factors(t) -> list[Factor]:
    """The ``[train]`` snapshot counts as memory factors (defaults: the section's)."""
    d = type(t)()
    return [
        Factor(
            "train.snapshots",
            t.snapshots,
            {"k": snapshot_count(t.steps, d.snapshots, t.linear_snapshots)},
            {"k": snapshot_count(t.steps, 2, t.linear_snapshots)},
        ),
        Factor(
            "train.linear_snapshots",
            t.linear_snapshots,
            {"k": snapshot_count(t.steps, t.snapshots, d.linear_snapshots)},
            {"k": snapshot_count(t.steps, t.snapshots, 0)},
        ),
    ]


def train_memory(
    n: int, d_in: int, widths: Sequence[int], members: int, k: int, dtype: str, save: str
) -> dict[str, float]:
    """:func:`network_memory` with the snapshots ``save`` keeps (twice: the list and
    the stacked arrays)."""
    parts = network_memory(n, d_in, widths, members, k, dtype)
    sizes = network_layer_bytes(d_in, widths, members, 4 if dtype == "float32" else 8)
    parts["snapshots"] = 2 * stored_bytes(k, sizes, kept_indices(save, k, sizes))
    return parts


def check_train_memory(cfg, n: int, d_in: int) -> float:
    """Refuse a network run (a validated ``Config``) too large for memory, before
    compute, naming the input that makes it so: ``data.n`` / ``data.d`` (or the
    ``data.path`` file, or the bundled ``data.dataset``), ``model.widths``,
    ``init.seeds`` / ``init.scales`` (ensemble members) or the snapshot counts."""
    t, d = cfg.train, cfg.data
    if cfg.init.path is None:
        members, member_factors = _members(cfg)
    else:
        members, member_factors = 1, []
    args = {
        "n": n,
        "d_in": d_in,
        "widths": tuple(cfg.model.widths),
        "members": members,
        "k": snapshot_count(t.steps, t.snapshots, t.linear_snapshots),
        "dtype": t.dtype,
        "save": t.save,
    }
    dd = type(d)()  # the [data] defaults
    if d.path is not None:
        rows = f"{n} rows of {d_in} inputs"
        data = [
            Factor("data.path", d.path, {"n": dd.n}, {"n": 1}, rows),
            Factor("data.path", d.path, {"d_in": dd.d}, {"d_in": 1}, rows),
        ]
    elif d.dataset == "teacher":
        data = [
            Factor("data.n", d.n, {"n": dd.n}, {"n": 1}),
            Factor("data.d", d.d, {"d_in": dd.d}, {"d_in": 1}),
        ]
    elif d.n == n:  # a 1-D built-in of data.n points
        data = [Factor("data.n", d.n, {"n": dd.n}, {"n": 1})]
    else:  # a bundled data set of its own size
        small = {"n": 1, "d_in": 1}
        data = [Factor("data.dataset", d.dataset, small, small, f"{n} x {d_in}")]
    m, w0 = len(cfg.model.widths), type(cfg.model)().widths[0]  # (the default width)
    widths = Factor(
        "model.widths", list(cfg.model.widths), {"widths": (w0,) * m}, {"widths": (1,) * m}
    )
    return check_memory(
        train_memory,
        args,
        [*data, widths, *member_factors, *_snapshot_factors(t)],
    )


def matrix_memory(
    n1: int,
    n2: int,
    width: int | None,
    depth: int,
    n_obs: int,
    sensing: bool,
    members: int,
    k: int,
    dtype: str,
) -> dict[str, float]:
    """Estimated bytes of a matrix run: the problem, the working set of one GD step
    of every member, and the snapshots kept (hidden width ``max(n1, n2)`` by default)."""
    h = width if width is not None else max(n1, n2)
    item = 4 if dtype == "float32" else 8
    dims = [n2] + [h] * (depth - 1) + [n1]
    weights = sum(dims[j] * dims[j + 1] for j in range(len(dims) - 1))
    a = n_obs * n1 * n2 if sensing else 0
    return {
        "problem": 8.0 * (4 * n1 * n2 + a),
        "working set": float(item) * members * (6 * weights + 4 * n1 * n2 + a),
        "snapshots": 8.0 * members * k * (3 * n1 * n2 + 2 * min(n1, n2)),
    }


def check_matrix_memory(cfg, n1: int, n2: int, n_obs: int) -> float:
    """Refuse a matrix run (a validated ``MatrixConfig``) too large for memory, naming
    the input that makes it so (``problem.n`` / ``cols`` / ``observed`` or the
    ``problem.path`` file, ``model.width``, seeds x scales, the snapshot counts)."""
    t, m, p = cfg.train, cfg.model, cfg.problem
    members, member_factors = _members(cfg)
    sensing = p.kind == "sensing"
    args = {
        "n1": n1,
        "n2": n2,
        "width": m.width,
        "depth": m.depth,
        "n_obs": n_obs,
        "sensing": sensing,
        "members": members,
        "k": snapshot_count(t.steps, t.snapshots, t.linear_snapshots),
        "dtype": t.dtype,
    }
    pd = type(p)()  # the [problem] defaults
    problem: list[Factor] = []
    if p.path is not None:
        shape = f"a {n1} x {n2} problem" + (f" with {n_obs} measurements" if sensing else "")
        size = {"n1": pd.n, "n2": pd.n}
        problem.append(Factor("problem.path", p.path, size, {"n1": 1, "n2": 1}, shape))
        if sensing:
            obs = Factor("problem.path", p.path, {"n_obs": pd.observed}, {"n_obs": 1}, shape)
            problem.append(obs)
    else:
        if p.cols is not None:
            problem.append(Factor("problem.n", p.n, {"n1": pd.n}, {"n1": 1}))
            problem.append(Factor("problem.cols", p.cols, {"n2": pd.n}, {"n2": 1}))
        else:
            both = Factor("problem.n", p.n, {"n1": pd.n, "n2": pd.n}, {"n1": 1, "n2": 1})
            problem.append(both)
        if sensing:
            problem.append(
                Factor("problem.observed", p.observed, {"n_obs": pd.observed}, {"n_obs": 1})
            )
    if m.width is not None:
        problem.append(Factor("model.width", m.width, {"width": None}, {"width": 1}))
    return check_memory(
        matrix_memory,
        args,
        [*problem, *member_factors, *_snapshot_factors(t)],
    )


def check_effective_scales(scales: Iterable[float], depth: int, z_norm: float) -> None:
    """The effective dynamics is solved in float64 from ``E = W_L ... W_1 z ~ eps^L |z|``:
    refuse scales for which that drive leaves ``[1e-150, 1e100]`` (it would underflow
    to 0 or overflow before the change of variables takes over); z = 0 is the
    no-drive case, reported per member, and is not refused."""
    for eps in scales:
        if eps is None or not eps > 0:
            continue
        log_e = depth * math.log10(eps) + (math.log10(z_norm) if z_norm > 0 else 0.0)
        if not -150 <= log_e <= 100:
            way = "underflows" if log_e < -150 else "overflows"
            raise InputError(
                "init.scale",
                eps,
                f"the effective drive E ~ eps^{depth} |z| = 1e{log_e:.0f} {way} in float64",
                f"give eps with eps^{depth} |z| in [1e-150, 1e100]",
            )


def check_depth(field: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise InputError(
            field, depth, f"at most {MAX_DEPTH} layers are supported", f"use depth <= {MAX_DEPTH}"
        )
