"""The validation layer for what users hand in: files, numbers, seeds, sizes.

Every reader of user input goes through these functions, at load time and
before any compute, and every failure is one :class:`~condensation.errors.InputError`
naming the field, the value and the fix.  They live by concept:

- :mod:`condensation.config.numbers`: integers, seeds, init scales, depth;
- :mod:`condensation.config.files`: TOML text, ``.npz`` archives, CSV, arrays;
- :mod:`condensation.config.parse`: ``--set`` values (:func:`set_value`);
- :mod:`condensation.config.memory`: a run's memory estimate, refused before compute.

This module re-exports them under their old names (``from condensation.config
import checks as inputs``).
"""

from __future__ import annotations

from condensation.config.files import (
    csv_cell,
    load_csv,
    load_npz,
    read_text,
    real_array,
)
from condensation.config.grid_memory import cell_memory, check_cell_memory
from condensation.config.memory import (
    MEMORY_ENV,
    MEMORY_FRACTION,
    Factor,
    available_memory,
    check_matrix_memory,
    check_memory,
    check_save,
    check_train_memory,
    matrix_memory,
    memory_limit,
    network_memory,
    snapshot_count,
    train_memory,
)
from condensation.config.numbers import (
    MAX_ABS,
    MAX_DEPTH,
    MAX_INT,
    MAX_SNAPSHOTS,
    MAX_STEPS,
    SEED_LIMIT,
    UnderflowWarning,
    as_int,
    check_depth,
    check_effective_scales,
    check_int,
    check_scales,
    check_seed,
    dtype_limits,
)
from condensation.config.parse import set_value

__all__ = [
    "MAX_ABS",
    "MAX_DEPTH",
    "MAX_INT",
    "MAX_SNAPSHOTS",
    "MAX_STEPS",
    "MEMORY_ENV",
    "MEMORY_FRACTION",
    "SEED_LIMIT",
    "Factor",
    "UnderflowWarning",
    "as_int",
    "available_memory",
    "check_depth",
    "check_effective_scales",
    "check_int",
    "cell_memory",
    "check_cell_memory",
    "check_matrix_memory",
    "check_memory",
    "check_save",
    "check_scales",
    "check_seed",
    "check_train_memory",
    "csv_cell",
    "dtype_limits",
    "load_csv",
    "load_npz",
    "matrix_memory",
    "memory_limit",
    "network_memory",
    "read_text",
    "real_array",
    "set_value",
    "snapshot_count",
    "train_memory",
]
