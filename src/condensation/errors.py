"""The one error type for bad input, carrying field, value and fix."""

from __future__ import annotations


class InputError(ValueError):
    """Bad user input: names the field, echoes the value, says how to fix it.

    ``str(err)`` is a single line, suitable for the CLI's one-line message.
    """

    def __init__(self, field: str, value: object, problem: str, fix: str) -> None:
        self.field = field
        self.value = value
        self.problem = problem
        self.fix = fix
        super().__init__(f"{field} = {value!r}: {problem}; fix: {fix}")


class NumericalError(RuntimeError):
    """A numerical failure (NaN, overflow, an invariant broken) detected and reported."""
