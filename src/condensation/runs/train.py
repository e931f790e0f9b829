"""Deprecated: moved to :mod:`condensation.commands.train`; goes in the next release."""

import warnings

from condensation.commands import train as _moved

warnings.warn(
    "condensation.runs.train moved to condensation.commands.train "
    "(or use import condensation as C); the old path goes in the next release",
    DeprecationWarning,
    stacklevel=2,
)


def __getattr__(name: str):
    return getattr(_moved, name)
