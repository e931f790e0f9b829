"""The one TOML / ``--set`` parser and the one coercer of the package.

Every config family (:mod:`condensation.config.network`,
:mod:`condensation.config.matrix`), sweep specs and experiments' parameters
read user values through here:

- :func:`read_toml`: a TOML file as a dict (UTF-8, one line on a syntax error);
- :func:`set_value`: the text after ``=`` of a ``--set`` item as one TOML value,
  read entirely (a bare word is a string); :func:`parse_override` splits
  ``section.key=value``, :func:`parse_param` an experiment's ``key=value``;
- :func:`coerce`: one value checked and converted against a :class:`Kind` (the
  type a key holds: from a dataclass annotation, :meth:`Kind.of_annotation`, or
  from an experiment parameter's default, :meth:`Kind.of_default`);
- :mod:`condensation.config.sections` places values into a raw config dict
  and builds each ``[section]`` as its dataclass with :func:`coerce`.
"""

from __future__ import annotations

import functools
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from condensation.config.files import read_text
from condensation.config.numbers import MAX_ABS, MAX_INT, as_int
from condensation.errors import InputError

AUTO = "auto"  # [train] steps = "auto"


# ---- TOML text ----------------------------------------------------------------------
def read_toml(path: str | Path | None) -> dict[str, Any]:
    """A TOML file as a dict.

    Args:
        path: the file (None: no file, the built-in defaults).

    Returns:
        The parsed document (empty for None); a missing, non-UTF-8 or invalid file
        is an :class:`InputError` naming ``CONFIG``.
    """
    if path is None:
        return {}
    p = Path(path)
    return parse_toml(read_text(p, "CONFIG", "a TOML config"), "CONFIG", str(p))


def parse_toml(text: str, field: str, shown: str) -> dict[str, Any]:
    """TOML text as a dict; invalid TOML is one :class:`InputError`.

    Args:
        text: the document.
        field: what the error names (``CONFIG``, ``SPEC``).
        shown: the value the error shows (the file's path).

    Returns:
        The parsed document.
    """
    try:
        return tomllib.loads(text)
    except ValueError as e:  # TOMLDecodeError, or an integer too long to convert
        raise InputError(field, shown, f"not valid TOML ({e})", "fix the TOML syntax") from None


# ---- --set items ----------------------------------------------------------------------
# str.splitlines' line boundaries (a bare word holding one is refused)
_LINE_BREAKS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")


def set_value(item: str, rhs: str) -> object:
    """The value of a ``--set`` item, ``rhs`` (the text after ``=``) read as one TOML
    value, entirely; text that is not TOML is taken whole as a string (a bare word).

    Never silently shortened: ``rhs`` must be one TOML value and nothing else (a
    line break followed by ``key = ...`` or ``[table]`` would be read as another
    key and dropped), must not end in a ``#`` comment (TOML drops it), and a bare
    word must be one line.  Each of these is an :class:`InputError` naming the
    item.  A TOML value may span lines (a multi-line array, a ``\"\"\"`` string).

    >>> set_value("train.lr=0.1", "0.1"), set_value("data.dataset=sin", "sin")
    (0.1, 'sin')
    """
    rhs = rhs.strip()
    fix = "give one value (a newline inside a TOML string is written \\n, e.g. 'a\\nb')"
    try:
        doc = tomllib.loads(f"v = {rhs}")
    except ValueError:  # TOMLDecodeError, or an integer too long to convert
        if any(c in _LINE_BREAKS for c in rhs):
            raise InputError(
                "--set", item, "holds a line break and is not one TOML value", fix
            ) from None
        return rhs  # a bare word is taken as a string
    if set(doc) != {"v"}:
        raise InputError(
            "--set",
            item,
            f"more than one TOML value ({', '.join(sorted(set(doc) - {'v'}))} after a line "
            "break would be dropped)",
            fix,
        )
    if "#" in rhs and _is_toml(f"v = {rhs}x"):  # "x" can only extend a trailing comment
        raise InputError(
            "--set",
            item,
            "ends in a TOML comment ('#' and after), which would be dropped",
            "quote a value that holds '#' (e.g. 'a#b'), or remove the comment",
        )
    return doc["v"]


def _is_toml(text: str) -> bool:
    try:
        tomllib.loads(text)
    except ValueError:
        return False
    return True


def parse_override(item: str) -> tuple[str, str, Any]:
    """A config's ``--set section.key=value``.

    Args:
        item: the text given to ``--set``.

    Returns:
        ``(section, key, value)``, the value read by :func:`set_value` (a line break
        or a trailing comment is refused, not dropped).
    """
    if "=" not in item or "." not in item.split("=", 1)[0]:
        raise InputError(
            "--set", item, "expected section.key=value", "write e.g. --set train.lr=0.01"
        )
    lhs, rhs = item.split("=", 1)
    value = set_value(item, rhs)  # TOML, else a bare word; never cut short
    section, key = lhs.strip().split(".", 1)
    return section, key, value


def parse_param(item: str) -> tuple[str, Any]:
    """An experiment's ``--set key=value``.

    Args:
        item: the text given to ``--set``.

    Returns:
        ``(key, value)``, the value read by :func:`set_value`.
    """
    if "=" not in item:
        raise InputError("--set", item, "expected key=value", "write e.g. --set eps_min=1e-4")
    key, rhs = (s.strip() for s in item.split("=", 1))
    if not key:
        raise InputError("--set", item, "empty parameter name", "write e.g. --set eps_min=1e-4")
    return key, set_value(item, rhs)  # TOML, else a bare word; never cut short


# ---- coercion -----------------------------------------------------------------------
@dataclass(frozen=True)
class Kind:
    """The type one key holds, as :func:`coerce` checks it.

    ``base`` is one of ``bool``, ``int``, ``float``, ``str``, ``int|auto`` (an
    integer or the word ``"auto"``), ``list`` (entries of kind ``item``) or
    ``any`` (taken as given); ``optional``: None is accepted.
    """

    base: str
    item: Kind | None = None
    optional: bool = False

    @staticmethod
    @functools.cache
    def of_annotation(annotation: str) -> Kind:
        """The kind of a config dataclass field from its annotation string.

        Args:
            annotation: e.g. ``"float | None"``, ``"tuple[int, ...]"``, ``"int | str"``.

        Returns:
            The :class:`Kind`.
        """
        optional = "None" in annotation
        base = annotation.replace(" | None", "")
        if base == "int | str":
            return Kind("int|auto", optional=optional)
        if base.startswith("tuple["):
            inner = Kind.of_annotation(base[len("tuple[") : -len(", ...]")])
            return Kind("list", inner, optional)
        if base not in ("bool", "int", "float", "str"):
            raise TypeError(f"unhandled annotation {annotation}")  # pragma: no cover
        return Kind(base, optional=optional)

    @staticmethod
    def of_default(default: Any) -> Kind:
        """The kind of an experiment parameter from its default value.

        Args:
            default: a bool, int, float, str or list (an empty list: any entries).

        Returns:
            The :class:`Kind` (a list's entries: the kind of its first entry).
        """
        for t in (bool, int, float, str):  # bool first: it is an int
            if isinstance(default, t):
                return Kind(t.__name__)
        if isinstance(default, list):
            return Kind("list", Kind.of_default(default[0]) if default else Kind("any"))
        raise TypeError(f"unsupported default {default!r}")  # pragma: no cover


# What each kind expects, spelt for a config key (problem, "write NAME = ...") and
# for an experiment parameter ("expected FORM", "write KEY=<FORM>").
_EXPECTED = {
    "bool": ("expected true or false", "true or false", "true or false"),
    "float": ("expected a number", "<number>", "a number"),
    "str": ("expected a string", '"<text>"', "a string"),
    "list": ("expected a list", "[v1, v2, ...]", "a non-empty list, e.g. [1, 2]"),
    "int|auto": ('expected an integer or "auto"', '<integer> or "auto"', 'an integer or "auto"'),
}


def _wrong(key: str, value: Any, expected: str, param: bool) -> InputError:
    problem, syntax, form = _EXPECTED[expected]
    if param:
        return InputError(key, value, f"expected {form}", f"write {key}=<{form}>")
    name = key.rsplit(".", 1)[-1]
    return InputError(key, value, problem, f"write {name} = {syntax}")


def coerce(key: str, value: Any, kind: Kind, *, param: bool = False) -> Any:
    """Check and convert one user value against the kind of its key.

    The rules, the same for every key: a bool is only ``true``/``false``; an
    integer follows :func:`~condensation.config.numbers.as_int` (a float only
    when exactly integral, ``|v| <= 2**53``); a float is any finite number of
    magnitude at most :data:`~condensation.config.numbers.MAX_ABS` (an int up to
    ``2**53``); a list is non-empty and each entry is checked as its kind.

    Args:
        key: the key as the user wrote it (``train.lr``, or a parameter's name).
        value: the value (a TOML type).
        kind: what the key holds.
        param: spell the messages for an experiment parameter (``write KEY=<...>``;
            lists stay lists) rather than a config key (``write NAME = ...``; lists
            become tuples).

    Returns:
        The converted value; anything else is an :class:`InputError` naming the key.
    """
    name = key if param else key.rsplit(".", 1)[-1]
    base = kind.base
    if value is None and kind.optional:
        return None
    if base == "any":
        return value
    if base == "int|auto":
        if value == AUTO:
            return AUTO
        if isinstance(value, str):
            raise _wrong(key, value, "int|auto", param)
        base = "int"
    if base == "bool":
        if isinstance(value, bool):
            return value
        raise _wrong(key, value, "bool", param)
    if base == "int":  # an int, or a float only when exactly integral: one rule
        return as_int(key, value)
    if base == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _wrong(key, value, "float", param)
        if isinstance(value, int) and abs(value) > MAX_INT:
            fix = f"give a smaller {key}" if param else f"give |{name}| <= 2**53"
            raise InputError(key, value, "number too large", fix)
        if not math.isfinite(value):
            raise InputError(key, value, "must be finite", f"give a finite {name}")
        if abs(value) > MAX_ABS:
            raise InputError(
                key, value, f"must be at most {MAX_ABS:g} in magnitude", f"give a smaller {name}"
            )
        return float(value)
    if base == "str":
        if not isinstance(value, str):
            raise _wrong(key, value, "str", param)
        return value
    if base == "list":
        if not isinstance(value, (list, tuple)) or (param and not value):
            raise _wrong(key, value, "list", param)
        if len(value) == 0:
            raise InputError(key, value, "must not be empty", f"give at least one {name} entry")
        entries = [coerce(key, v, kind.item, param=param) for v in value]
        return entries if param else tuple(entries)
    raise TypeError(f"unhandled kind {kind}")  # pragma: no cover
