"""The config family of each command: what a sweep (or any caller) needs to build,
resolve and name the configs of a command without knowing which it is.

``train`` and ``effective`` take the network config
(:mod:`condensation.config.network`), ``matrix`` the matrix config
(:mod:`condensation.config.matrix`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from condensation.config import matrix, network
from condensation.config.parse import read_toml
from condensation.config.paths import anchor_paths, resolve_value
from condensation.config.sections import apply_items, split_key


@dataclass(frozen=True)
class Family:
    """A config family: its sections, its loaders and the keys that need care.

    Attributes:
        name: ``network`` or ``matrix``.
        sections: ``{section: dataclass}``.
        from_raw: a raw dict of values -> the validated config object.
        path_keys: ``(section, key)`` of every file path the config holds.
        scale_keys: the keys that set the initial scale (one of them at a time).
        seed_keys: the keys that set the ensemble's seeds (one of them at a time).
    """

    name: str
    sections: Mapping[str, type]
    from_raw: Callable[[dict], Any]
    path_keys: tuple[tuple[str, str], ...]
    scale_keys: tuple[str, ...]
    seed_keys: tuple[str, ...] = ("init.seed", "init.seeds")

    def keys(self) -> list[str]:
        """Every ``section.key`` the family accepts, in declaration order."""
        import dataclasses

        return [
            f"{s}.{f.name}" for s, cls in self.sections.items() for f in dataclasses.fields(cls)
        ]

    def read(self, path: str | Path) -> dict[str, Any]:
        """A config file as a raw dict, its relative paths resolved against its folder."""
        return anchor_paths(read_toml(path), path, self.path_keys)

    def resolve(self, key: str, value: Any, base: str | Path) -> Any:
        """``value`` of ``section.key`` with a relative path resolved against ``base``."""
        return resolve_value(*split_key(key), value, base, self.path_keys)

    def build(self, raw: Mapping[str, Any], items: Mapping[str, Any] = {}):  # noqa: B006
        """The validated config of ``raw`` with ``items`` (``{"section.key": value}``,
        values as TOML gives them) placed in order.

        Args:
            raw: the base config as a raw dict (not changed).
            items: the values to place, in order (a scale key replaces the others).

        Returns:
            The validated config object (``Config`` or ``MatrixConfig``).
        """
        return self.from_raw(apply_items(raw, ((*split_key(k), v) for k, v in items.items())))


NETWORK = Family(
    "network",
    network.SECTIONS,
    network.config_from_raw,
    network.PATH_KEYS,
    tuple(f"init.{k}" for k in ("scale", "scales", "gamma", "layer_scales", "layer_gammas")),
)
MATRIX = Family(
    "matrix",
    matrix.SECTIONS,
    matrix.matrix_config_from_raw,
    matrix.PATH_KEYS,
    ("init.scale", "init.scales"),
)
# the config family each command takes (the command registry owns this at merge)
COMMAND_FAMILIES: dict[str, Family] = {"train": NETWORK, "effective": NETWORK, "matrix": MATRIX}


def family_of(command: str) -> Family:
    """The config family of ``command`` (``train``, ``effective``, ``matrix``)."""
    return COMMAND_FAMILIES[command]
