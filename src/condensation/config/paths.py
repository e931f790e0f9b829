"""The one path resolver: where a file path a user writes points.

A config family names its path keys (``PATH_KEYS``: ``data.path``,
``init.path``; ``problem.path``).  A relative path resolves against the
directory of the file that names it (a config file, a sweep spec or its base
config: so a file works from any working directory), a path given on the
command line (``--set``) against the working directory; ``~`` is expanded.
Stored configs hold absolute paths, so a run directory re-runs from anywhere.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

PathKeys = Iterable[tuple[str, str]]  # (section, key) of each file path of a config


def resolve_path(value: str, base: str | Path) -> str:
    """A user's path made absolute.

    Args:
        value: the path as written (``~`` expanded; an absolute path is kept).
        base: the directory a relative ``value`` is relative to.

    Returns:
        The absolute, normalised path.
    """
    p = os.path.expanduser(value)
    return os.path.normpath(os.path.join(os.path.abspath(base), p))  # join keeps an absolute p


def resolve_value(section: str, key: str, value: Any, base: str | Path, keys: PathKeys) -> Any:
    """``value`` resolved against ``base`` when ``section.key`` is a path key and
    the value a string; any other value unchanged."""
    if (section, key) in tuple(keys) and isinstance(value, str):
        return resolve_path(value, base)
    return value


def anchor_paths(
    raw: Mapping[str, Any], config_path: str | Path | None, keys: PathKeys
) -> dict[str, Any]:
    """A config file's relative paths made absolute against the file's own directory.

    Args:
        raw: the file's contents (not changed).
        config_path: the file (None: no file, nothing to anchor).
        keys: the family's path keys.

    Returns:
        A copy of ``raw`` with every path key resolved.
    """
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    if config_path is None:
        return raw
    base = Path(os.path.abspath(config_path)).parent
    for section, key in keys:
        body = raw.get(section)
        if isinstance(body, dict) and isinstance(body.get(key), str):
            body[key] = resolve_path(body[key], base)
    return raw


def absolute_paths(cfg, keys: PathKeys):
    """``cfg`` with its remaining relative paths (from ``--set``) made absolute against
    the working directory, so the stored config.toml re-runs from anywhere.

    Args:
        cfg: a config object of section dataclasses.
        keys: the family's path keys.

    Returns:
        The config (the same object when nothing changed).
    """
    for section, key in keys:
        body = getattr(cfg, section)
        p = getattr(body, key)
        if isinstance(p, str):
            absolute = resolve_path(p, os.getcwd())
            if absolute != p:
                body = dataclasses.replace(body, **{key: absolute})
                cfg = dataclasses.replace(cfg, **{section: body})
    return cfg
