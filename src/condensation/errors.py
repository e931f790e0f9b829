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
        super().__init__(f"{field} = {_short_repr(value)}: {problem}; fix: {fix}")


def _short_repr(value: object, limit: int = 200) -> str:
    """``repr(value)`` on one line and at most ``limit`` characters (a huge integer's
    repr can itself fail)."""
    try:
        text = repr(value)
    except ValueError:
        text = f"<{type(value).__name__} too large to print>"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class NumericalError(RuntimeError):
    """A numerical failure (NaN, overflow, an invariant broken) detected and reported."""
