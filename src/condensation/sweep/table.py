"""The sweep's results table: one row per ensemble member of every cell.

Columns: one per axis (named as the axis key; list values as JSON text), ``cell``
(the cell id), ``status`` (the member's own status; ``failed`` when its cell
failed, ``not_run`` when its cell was not run, e.g. the sweep was interrupted),
``error`` (the cell's one-line error), then every scalar field of the member's
summary.
Written as Parquet (pyarrow) and CSV, each atomically.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

from condensation.store.rundir import atomic_write_bytes
from condensation.sweep.expand import Cell

FAILED = "failed"
NOT_RUN = "not_run"


def _cell_value(v: Any) -> Any:
    if isinstance(v, (list, tuple, dict)):
        return json.dumps(v)
    return v


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, (bool, int, float, str))


def member_row(cell: Cell, member: dict, cell_id: str | None = None) -> dict:
    """One member's row: axis columns, cell id, status, error, summary scalars."""
    axes = cell.member_axes(member.get("seed"), member.get("scale"))
    row = {k: _cell_value(v) for k, v in axes.items()}
    row.update(cell=cell_id or cell.id, status=member.get("status", "ok"), error=None)
    for k, v in member.items():
        if k not in row and _scalar(v):
            row[k] = v
    return row


def failed_row(
    cell: Cell, member: tuple, cell_id: str, error: str | None, status: str = FAILED
) -> dict:
    """The row of a member whose cell failed (``status`` ``failed``, with its error)
    or did not run (``not_run``, no error)."""
    row = {k: _cell_value(v) for k, v in cell.member_axes(*member).items()}
    return {**row, "cell": cell_id, "status": status, "error": error}


def _normalise(rows: list[dict]) -> tuple[list[str], list[dict]]:
    """Every row with every column; a numeric column with any float is all float."""
    cols: list[str] = []
    for r in rows:
        cols.extend(k for k in r if k not in cols)
    out = [{c: r.get(c) for c in cols} for r in rows]
    for c in cols:
        vals = [r[c] for r in out if r[c] is not None]
        nums = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals)
        if nums and any(isinstance(v, float) for v in vals):
            for r in out:
                if r[c] is not None:
                    r[c] = float(r[c])
        elif not nums and len({type(v) for v in vals}) > 1:  # mixed kinds: as text
            for r in out:
                if r[c] is not None:
                    r[c] = json.dumps(r[c]) if not isinstance(r[c], str) else r[c]
    for r in out:
        for c, v in r.items():
            if isinstance(v, float) and not math.isfinite(v):
                r[c] = None
    return cols, out


def write_table(out: Path, rows: list[dict], name: str = "results") -> None:
    """``out/NAME.parquet`` and ``out/NAME.csv`` (``NAME`` = ``results`` by default)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    cols, rows = _normalise(rows)
    table = pa.Table.from_pylist(rows) if rows else pa.table({c: [] for c in cols})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    atomic_write_bytes(out / f"{name}.parquet", buf.getvalue())
    buf = io.BytesIO()
    pacsv.write_csv(table, buf)
    atomic_write_bytes(out / f"{name}.csv", buf.getvalue())


def read_table(out: Path):
    """The results table as a pyarrow Table."""
    import pyarrow.parquet as pq

    return pq.read_table(out / "results.parquet")
