"""The one error type for bad input, carrying field, value and fix."""

from __future__ import annotations

LIMIT = 200  # most characters of the field and of the value in a message


class InputError(ValueError):
    """Bad user input: names the field, echoes the value, says how to fix it.

    ``str(err)`` is a single printable line, suitable for the CLI's one-line
    message: every control or other non-printable character of the field, the
    value, the problem and the fix (a newline, an ANSI escape, a NUL, a
    line separator) is shown escaped as Python writes it (``\\n``, ``\\x1b``,
    ``\\x00``, ``\\u2028``), so a hostile key name can neither break the line nor
    drive the terminal.  The attributes keep what was given.
    """

    def __init__(self, field: str, value: object, problem: str, fix: str) -> None:
        self.field = field
        self.value = value
        self.problem = problem
        self.fix = fix
        super().__init__(
            f"{_clip(printable(str(field)))} = {_short_repr(value)}: "
            f"{printable(str(problem))}; fix: {printable(str(fix))}"
        )


_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str) -> str:
    """``text`` with every non-printable character (``str.isprintable``; the plain
    space is kept) escaped as in ``repr``: one printable line, unchanged when it
    already is one (backslashes are not doubled, so escaping twice changes nothing).

    >>> printable("a\\nb\\x1b[2J\\x00")
    'a\\\\nb\\\\x1b[2J\\\\x00'
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def _escape(c: str) -> str:
    if c in _NAMED:
        return _NAMED[c]
    code = ord(c)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _clip(text: str, limit: int = LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _short_repr(value: object, limit: int = LIMIT) -> str:
    """``repr(value)`` on one printable line and at most ``limit`` characters (a huge
    integer's repr can itself fail)."""
    try:
        text = repr(value)
    except ValueError:
        text = f"<{type(value).__name__} too large to print>"
    text = printable(" ".join(text.split()))
    return _clip(text, limit)


class NumericalError(RuntimeError):
    """A numerical failure (NaN, overflow, an invariant broken) detected and reported."""
