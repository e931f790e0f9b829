"""The schema of the summaries the report renders, checked once at load.

A run directory is data: its ``summary.json`` may have been hand-edited,
truncated or planted.  :func:`check_experiment` and :func:`check_reproduce`
check each key the report shows (its type, its nesting) and fill in the defaults
of the optional ones, so rendering never meets a shape it cannot print: a
malformed summary is refused in one line naming the file and the key.  The files
themselves are read with :func:`condensation.store.load_run.read_json`, and every path
they name is :func:`condensation.store.load_run.confined` to the run.
"""

from __future__ import annotations

from typing import Any

from condensation.errors import InputError

MAX_DEPTH = 16  # nesting of a parameter or headline value (lists / objects)
FIX = "re-run the command that wrote it (or restore the file from that run)"


def _type_name(v: Any) -> str:
    return {
        type(None): "null",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
    }.get(type(v), type(v).__name__)


def _want(where: str, key: str, v: Any, kind: str) -> InputError:
    return InputError(f"{where} {key}", v, f"must be {kind}, not {_type_name(v)}", FIX)


def _string(where: str, key: str, v: Any) -> str:
    if not isinstance(v, str):
        raise _want(where, key, v, "a string")
    return v


def _strings(where: str, key: str, v: Any) -> list[str]:
    if not isinstance(v, list):
        raise _want(where, key, v, "a list of strings")
    for i, x in enumerate(v):
        _string(where, f"{key}[{i}]", x)
    return v


def _plain(where: str, key: str, v: Any, depth: int = 0) -> Any:
    """A JSON value nested at most :data:`MAX_DEPTH` deep (what ``_fmt`` can print)."""
    if depth > MAX_DEPTH:
        raise InputError(f"{where} {key}", v, f"is nested more than {MAX_DEPTH} deep", FIX)
    if isinstance(v, list):
        for i, x in enumerate(v):
            _plain(where, f"{key}[{i}]", x, depth + 1)
    elif isinstance(v, dict):
        for k, x in v.items():
            _plain(where, f"{key}[{k!r}]", x, depth + 1)
    return v


def _object(where: str, key: str, v: Any) -> dict:
    if not isinstance(v, dict):
        raise _want(where, key, v, "an object")
    for k, x in v.items():
        _plain(where, f"{key}[{k!r}]", x)
    return v


def _top(s: Any, where: str) -> dict:
    if not isinstance(s, dict):
        raise InputError(where, _type_name(s), "must be a JSON object", FIX)
    return s


def _get(
    s: dict, where: str, key: str, default: Any = None, required: bool = False, at: str = ""
) -> Any:
    """``s[key]``, ``default`` when absent; InputError when absent and ``required``."""
    if key not in s:
        if required:
            name = f"{at}.{key}" if at else key
            raise InputError(f"{where} {name}", None, "is missing (the report needs it)", FIX)
        return default
    return s[key]


def check_experiment(s: Any, where: str) -> dict:
    """The experiment summary ``s`` (read from the file ``where``) in the shape the
    report renders: ``kind``, ``name`` and ``title`` required (strings); ``story``,
    ``section`` (strings), ``quick`` (boolean), ``params``, ``headline`` (objects of
    JSON values), ``figures`` (objects with a string ``file``, a string ``caption``
    and a list of strings ``numbers``) and ``other_numbers`` (strings) optional.
    Keys the report does not show are kept as they are.  InputError names the file
    and the key of the first mismatch."""
    s = _top(s, where)
    out = dict(s)
    kind = _get(s, where, "kind", required=True)
    if kind != "experiment":
        raise InputError(f"{where} kind", kind, "must be 'experiment'", FIX)
    out["name"] = _string(where, "name", _get(s, where, "name", required=True))
    out["title"] = _string(where, "title", _get(s, where, "title", required=True))
    out["story"] = _string(where, "story", _get(s, where, "story", ""))
    out["section"] = _string(where, "section", _get(s, where, "section", "other"))
    quick = _get(s, where, "quick", False)
    if not isinstance(quick, bool):
        raise _want(where, "quick", quick, "true or false")
    out["params"] = _object(where, "params", _get(s, where, "params", {}))
    out["headline"] = _object(where, "headline", _get(s, where, "headline", {}))
    out["other_numbers"] = _strings(where, "other_numbers", _get(s, where, "other_numbers", []))
    figs = _get(s, where, "figures", [])
    if not isinstance(figs, list):
        raise _want(where, "figures", figs, "a list of objects")
    out["figures"] = []
    for i, f in enumerate(figs):
        key = f"figures[{i}]"
        if not isinstance(f, dict):
            raise _want(where, key, f, "an object")
        out["figures"].append(
            {
                "file": _string(
                    where, f"{key}.file", _get(f, where, "file", required=True, at=key)
                ),
                "caption": _string(where, f"{key}.caption", f.get("caption", "")),
                "numbers": _strings(where, f"{key}.numbers", f.get("numbers", [])),
            }
        )
    return out


def check_reproduce(s: Any, where: str) -> dict:
    """The reproduce summary ``s`` (read from the file ``where``): ``experiments`` a
    list of strings (each later :func:`confined` to the run), ``quick`` a boolean."""
    s = _top(s, where)
    out = dict(s)
    out["experiments"] = _strings(where, "experiments", _get(s, where, "experiments", []))
    quick = _get(s, where, "quick", False)
    if not isinstance(quick, bool):
        raise _want(where, "quick", quick, "true or false")
    return out
