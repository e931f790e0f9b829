"""An experiment's parameters: ``--set key=value`` parsed and coerced by the config's
one parser, range checks, and the ``data.*`` keys every experiment takes (checked as
a config's ``[data]`` section) with what a summary records about the data used."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from condensation.errors import InputError


def parse_set(item: str) -> tuple[str, Any]:
    """``key=value`` → (key, value); the value is parsed as TOML (a bare word is a
    string; a line break or a trailing comment is refused: see
    :func:`condensation.config.parse.set_value`).

    Args:
        item: the text given to ``--set``.

    Returns:
        ``(key, value)``.
    """
    from condensation.config.parse import parse_param

    return parse_param(item)


def coerce_param(key: str, value: Any, default: Any) -> Any:
    """Check ``value`` against the type of ``default`` (an int is accepted for a float):
    the config's one coercer (:func:`condensation.config.parse.coerce`).

    Args:
        key: the parameter's name.
        value: the value given (a TOML type).
        default: the parameter's default (its type is the parameter's).

    Returns:
        The converted value.
    """
    from condensation.config.parse import Kind, coerce

    return coerce(key, value, Kind.of_default(default), param=True)


def check_param_range(key: str, value: Any, default: Any) -> None:
    """The ranges every experiment parameter obeys: seeds (``seed`` in the name) follow
    the one seed rule; a number keeps the sign of its default (> 0 where the default
    is positive, >= 0 where it is 0) and stays representable (|v| <= 1e100, ints
    <= 2**53)."""
    from condensation.config import checks as inputs

    if isinstance(value, list):
        for v in value:  # every entry against the first default entry, as coerce_param
            check_param_range(key, v, default[0] if default else None)
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if "seed" in key and isinstance(value, int):
        inputs.check_seed(key, value)
        return
    limit = inputs.MAX_INT if isinstance(value, int) else inputs.MAX_ABS
    if abs(value) > limit:
        raise InputError(
            key, value, f"must be at most {limit:g} in magnitude", f"give a smaller {key}"
        )
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        if default > 0 and not value > 0:
            raise InputError(key, value, "must be > 0", f"give a positive {key}")
        if default == 0 and value < 0:
            raise InputError(key, value, "must be >= 0", f"give {key} >= 0")


def require_positive(p: dict[str, Any], keys: Sequence[str]) -> None:
    """Each of ``p[k]`` for ``k`` in ``keys`` must be > 0 (InputError naming it)."""
    for k in keys:
        if not p[k] > 0:
            raise InputError(k, p[k], "must be > 0", f"give a positive {k}")


def require_counts(p: dict[str, Any], keys: Sequence[str]) -> None:
    """Each of ``p[k]`` for ``k`` in ``keys`` is a count: must be >= 1."""
    for k in keys:
        if p[k] < 1:
            raise InputError(k, p[k], "must be >= 1", f"give a positive {k}")


def require_eps_range(p: dict[str, Any]) -> None:
    """``0 < eps_min < eps_max`` and ``n_eps >= 2`` (a log-log slope is fitted)."""
    if not 0 < p["eps_min"] < p["eps_max"]:
        raise InputError(
            "eps_min", p["eps_min"], f"must be > 0 and < eps_max = {p['eps_max']}", "fix the range"
        )
    if p["n_eps"] < 2:
        raise InputError("n_eps", p["n_eps"], "must be >= 2 to fit a slope", "use n_eps >= 2")


def check_data(body: dict[str, Any]) -> dict[str, Any]:
    """``data.*`` parameters checked as the config's ``[data]`` section (InputError)."""
    from condensation.config.memory import check_data_memory
    from condensation.config.network import DataConfig, validate_data
    from condensation.config.sections import build_section

    cfg = build_section("data", body, DataConfig)
    path = cfg.path
    if path is not None and not Path(path).is_file():
        raise InputError("data.path", path, "no such file", "give an existing .npz or .csv file")
    check_data_memory(validate_data(cfg))
    return body


def data_section(params: dict[str, Any], default: dict[str, Any]) -> dict[str, Any]:
    """An experiment's ``[data]`` section: its own ``default`` updated by ``data.*``."""
    return {**default, **params.get("data", {})}


def data_config(params: dict[str, Any], default: dict[str, Any]):
    """The :class:`~condensation.config.network.DataConfig` of :func:`data_section`, built
    and coerced as the config's ``[data]`` (InputError naming ``data.KEY``)."""
    from condensation.config.memory import check_data_memory
    from condensation.config.network import DataConfig, validate_data
    from condensation.config.sections import build_section

    cfg = validate_data(build_section("data", data_section(params, default), DataConfig))
    check_data_memory(cfg)
    return cfg


def describe_data(cfg, data, own_default=None) -> dict[str, Any]:
    """What a summary records about the data an experiment used.

    Args:
        cfg: the :class:`~condensation.config.network.DataConfig` it was built from.
        data: the :class:`~condensation.data.Dataset` itself.
        own_default: the experiment's own default ``DataConfig`` (None: unknown).

    Returns:
        ``{"name", "path", "n", "d", "teacher", "default", "default_teacher",
        "section"}``: the set's name (a built-in's, or the file's name), the path
        as given (None for a built-in set), the number of samples, the input
        dimension (a bias column included), whether it is the built-in teacher set,
        whether it is the experiment's own default data, whether both, and the
        ``[data]`` keys that made these data (a file: ``path`` and ``bias``; a
        built-in set: every key but ``path``).
    """
    import dataclasses

    teacher = cfg.path is None and cfg.dataset == "teacher"
    default = own_default is not None and cfg == own_default
    keys = ("path", "bias") if cfg.path is not None else None
    section = {
        k: v for k, v in dataclasses.asdict(cfg).items() if (k in keys if keys else k != "path")
    }
    return {
        "name": data.name,
        "path": cfg.path,
        "n": int(data.x.shape[0]),
        "d": int(data.d_in),
        "teacher": teacher,
        "default": default,
        "default_teacher": teacher and default,
        "section": section,
    }
