"""User files and arrays, read strictly: TOML text, ``.npz`` archives, CSV tables.

- TOML configs must be UTF-8 (:func:`read_text`);
- ``.npz`` archives are opened without pickle (object arrays, corrupt or empty
  archives, a renamed ``.npy`` are refused; :func:`load_npz`);
- CSV is parsed here, strictly (:func:`load_csv`: a BOM dropped, a header only
  when its first row has no numeric cell, every other cell a finite decimal
  number), so an error names the row, the column and the cell;
- arrays: real numbers only (complex, text, object arrays refused), finite, and
  at most :data:`~condensation.config.numbers.MAX_ABS` in magnitude, so that
  squares and products of inputs stay representable in float64 (:func:`real_array`).
"""

from __future__ import annotations

import csv
import io
import math
import re
import zipfile
from pathlib import Path

import numpy as np

from condensation.config.numbers import MAX_ABS
from condensation.errors import InputError


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
