"""Deprecated: moved to :mod:`condensation.commands.matrix`; goes in the next release."""

import warnings

from condensation.commands import matrix as _moved

warnings.warn(
    "condensation.runs.matrix moved to condensation.commands.matrix "
    "(or use import condensation as C); the old path goes in the next release",
    DeprecationWarning,
    stacklevel=2,
)


def __getattr__(name: str):
    return getattr(_moved, name)
