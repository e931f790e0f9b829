"""Deprecated: moved to :mod:`condensation.commands.effective`; goes in the next release."""

import warnings

from condensation.commands import effective as _moved

warnings.warn(
    "condensation.runs.effective moved to condensation.commands.effective "
    "(or use import condensation as C); the old path goes in the next release",
    DeprecationWarning,
    stacklevel=2,
)


def __getattr__(name: str):
    return getattr(_moved, name)
