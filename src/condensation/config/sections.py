"""Raw config dicts -> section dataclasses: where values go and how they are built.

Shared by every config family and by sweep specs: :func:`apply_items` places
values (``--set`` items, a sweep's fixed and axis values) into a raw dict,
:func:`build_tables` builds each ``[section]`` as its dataclass, every value
checked by :func:`condensation.config.parse.coerce`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from condensation.config.parse import Kind, coerce, parse_override
from condensation.errors import InputError

# [init] keys that set the initial scale: giving one replaces the others
SCALE_KEYS = ("scale", "gamma", "scales", "layer_scales", "layer_gammas")


def split_key(key: str) -> tuple[str, str]:
    """``"section.key"`` -> ``("section", "key")`` (the first dot splits)."""
    section, _, name = key.partition(".")
    return section, name


def apply_items(raw: Mapping[str, Any], items: Iterable[tuple[str, str, Any]]) -> dict[str, Any]:
    """Values placed into a copy of a raw config dict.

    Args:
        raw: the config as read (``{section: {key: value}}``); not changed.
        items: ``(section, key, value)`` triples, in order (``--set`` items, a
            sweep's fixed values and axis values).  One of the ``[init]`` keys that
            set the initial scale (:data:`SCALE_KEYS`) replaces the others.

    Returns:
        The new raw dict.
    """
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for section, key, value in items:
        body = out.setdefault(section, {})
        if not isinstance(body, dict):
            raise InputError(section, body, "expected a table", f"write [{section}] then keys")
        if section == "init" and key in SCALE_KEYS:  # an override replaces the scale choice
            for other in SCALE_KEYS:
                body.pop(other, None)
        body[key] = value
    return out


def build_section(section: str, raw: Mapping[str, Any], cls: type):
    """One ``[section]`` as its dataclass, every value coerced (unknown keys refused).

    Args:
        section: the section's name (for messages).
        raw: its keys and values.
        cls: the section dataclass.

    Returns:
        The ``cls`` instance.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for name, value in raw.items():
        if name not in fields:
            raise InputError(
                f"{section}.{name}",
                value,
                "unknown key",
                f"use one of: {', '.join(fields)}",
            )
        kind = Kind.of_annotation(str(fields[name].type))
        kwargs[name] = coerce(f"{section}.{name}", value, kind)
    return cls(**kwargs)


def build_tables(raw: Mapping[str, Any], sections: Mapping[str, type]) -> dict[str, Any]:
    """Every section of a raw config dict as its dataclass.

    Args:
        raw: ``{section: {key: value}}``.
        sections: the family's ``{section: dataclass}``.

    Returns:
        ``{section: dataclass instance}`` for the sections present.
    """
    built = {}
    for section, body in raw.items():
        if section not in sections:
            raise InputError(
                section,
                body if not isinstance(body, dict) else "[...]",
                "unknown config section",
                f"use sections {', '.join(f'[{s}]' for s in sections)}",
            )
        if not isinstance(body, dict):
            raise InputError(section, body, "expected a table", f"write [{section}] then keys")
        built[section] = build_section(section, body, sections[section])
    return built


def build_sections(
    raw: Mapping[str, Any], overrides: Iterable[str], sections: Mapping[str, type]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Apply ``--set`` overrides to a raw TOML dict and build each section dataclass.

    Args:
        raw: the config as read.
        overrides: ``section.key=value`` items (:func:`parse_override`).
        sections: the family's ``{section: dataclass}``.

    Returns:
        ``(raw with the overrides, {section: dataclass})``.
    """
    raw = apply_items(raw, (parse_override(item) for item in overrides))
    return raw, build_tables(raw, sections)


def sections_to_dict(cfg) -> dict[str, dict[str, Any]]:
    """A config of section dataclasses as a plain dict for TOML/JSON (None dropped:
    TOML has no null)."""
    out: dict[str, dict[str, Any]] = {}
    for f in dataclasses.fields(cfg):
        sec = dataclasses.asdict(getattr(cfg, f.name))
        out[f.name] = {
            k: (list(v) if isinstance(v, tuple) else v) for k, v in sec.items() if v is not None
        }
    return out


def keys_of(sections: Mapping[str, type]) -> list[str]:
    """Every ``section.key`` a config family accepts, in declaration order."""
    return [f"{s}.{f.name}" for s, cls in sections.items() for f in dataclasses.fields(cls)]
