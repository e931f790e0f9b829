"""A sweep's results read back in Python: ``condensation.load_sweep(DIR)``.

``DIR`` is the ``--out`` of ``condensation sweep``: its table
(``results.parquet``, one row per member; columns as :mod:`condensation.sweep.table`
says, list-valued axes as JSON text as in ``results.csv``) and its
``summary.json``.  ``load_sweep(DIR).to_pandas()`` gives the table as a pandas
DataFrame; ``.to_polars()`` as a polars one where polars is installed (it is not
a dependency).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from condensation.errors import InputError
from condensation.store.load_run import FIX, confined, read_json, shown

TABLE = "results.parquet"


@dataclass(frozen=True)
class Sweep:
    """A sweep directory's table and summary.

    Attributes:
        path: the sweep directory.
        table: the results table (a ``pyarrow.Table``, one row per member).
        summary: its ``summary.json`` (kind ``sweep``: command, axes, counts).
    """

    path: Path
    table: Any = field(repr=False)
    summary: dict = field(repr=False)

    @property
    def axes(self) -> list[str]:
        """The sweep's axes (the table's first columns), in the spec's order."""
        cols = self.table.column_names
        return cols[: cols.index("cell")] if "cell" in cols else list(self.summary.get("axes", {}))

    @property
    def rows(self) -> list[dict]:
        """The table as a list of dicts (one per member)."""
        return self.table.to_pylist()

    def to_pandas(self):
        """The table as a ``pandas.DataFrame`` (a missing value is NaN / None)."""
        return self.table.to_pandas()

    def to_polars(self):
        """The table as a ``polars.DataFrame`` (needs polars, not a dependency)."""
        try:
            import polars
        except ImportError:
            raise ImportError(
                "Sweep.to_polars needs polars, which is not installed: "
                "pip install polars (or use .to_pandas())"
            ) from None
        return polars.from_arrow(self.table)

    def __len__(self) -> int:
        return self.table.num_rows


def load_sweep(directory: str | Path) -> Sweep:
    """Read a sweep directory's table and summary back.

    Args:
        directory: the ``--out`` of ``condensation sweep`` (or of
            :func:`condensation.sweep.run_sweep`).

    Returns:
        The :class:`Sweep`; ``.to_pandas()`` / ``.to_polars()`` give its table as
        a DataFrame.

    Raises:
        InputError: not a sweep directory, or its table cannot be read.
    """
    d = Path(directory)
    if not (d / TABLE).is_file() and not (d / TABLE).is_symlink():
        raise InputError(
            "DIR",
            shown(d),
            f"not a sweep directory (no {TABLE})",
            "give the --out of `condensation sweep` (a sweep that completed or was "
            "interrupted writes its table there)",
        )
    import pyarrow as pa
    import pyarrow.parquet as pq

    # nothing outside the sweep is read: a table or summary that is a symlink out of
    # DIR is refused (store.load_run.confined), whatever it points at
    table_path = confined(d, TABLE, TABLE)
    try:
        table = pq.read_table(table_path)
    except (OSError, pa.ArrowException) as e:
        raise InputError("DIR", shown(d / TABLE), f"cannot be read ({e})", FIX) from None
    at = d / "summary.json"
    has_summary = at.is_file() or at.is_symlink()
    summary = {}
    if has_summary:
        summary = read_json(confined(d, "summary.json", "summary.json"), "summary.json")
    if not isinstance(summary, dict):
        raise InputError("summary.json", shown(at), "is not a JSON object", FIX)
    return Sweep(d, table, summary)
