"""Matrix-run configuration: ``[problem]``, ``[model]``, ``[init]``, ``[train]``."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from condensation.config import _coerce, parse_override
from condensation.errors import InputError

KINDS = ("completion", "sensing")
SCHEMES = ("gaussian", "balanced", "identity")
SPECTRA = ("gaussian", "flat")
ALIGNED = 0.95  # |cos(row, v1)| above which a row of W1 counts as condensed onto v1
PLATEAU_RANK = 1.2  # effective rank below which the product counts as rank one
PLATEAU_EXIT = 0.1  # the loss has left its first plateau once down by this fraction


# ---- configuration -------------------------------------------------------------------
@dataclass(frozen=True)
class ProblemConfig:
    """``[problem]``: a generated rank-r problem, or a user ``.npz`` (``path``).

    ``.npz`` files hold ``M`` (n1, n2) and either ``mask`` (n1, n2; 0/1 or bool)
    for completion or ``A`` (k, n1, n2) and optionally ``y`` (k,; default
    ``A(M)``) for sensing.
    """

    kind: str = "completion"  # one of KINDS
    path: str | None = None
    n: int = 20  # rows of the generated M
    cols: int | None = None  # columns (default n)
    rank: int = 2
    spectrum: str = "gaussian"  # one of SPECTRA
    observed: int = 142  # completion: observed entries; sensing: measurements
    seed: int = 0


@dataclass(frozen=True)
class MatrixModelConfig:
    """``[model]``: depth L (number of factors, >= 1) and hidden width h.

    The width defaults to the full dimension ``max(n1, n2)``.
    """

    depth: int = 3
    width: int | None = None


@dataclass(frozen=True)
class MatrixInitConfig:
    """``[init]``: ``scheme`` with scale eps; ``seeds`` x ``scales`` is the ensemble.

    - ``gaussian``: every entry i.i.d. ``N(0, eps^2)``;
    - ``balanced``: ``W1 = c O1 V^T``, ``Wk = c Ok O_{k-1}^T``, ``WL = c U O_{L-1}^T``
      with ``c = eps sqrt(h)`` and Haar-random partial isometries (rank
      ``r0 = min(n1, n2, h)``), so ``W_{k+1}^T W_{k+1} = W_k W_k^T`` exactly and
      ``X(0) = c^L U V^T``;
    - ``identity``: ``Wk = eps I`` (rectangular identities; deterministic).
    """

    scheme: str = "gaussian"
    scale: float | None = None  # eps; default 1e-3
    scales: tuple[float, ...] | None = None
    seed: int = 0
    seeds: tuple[int, ...] | None = None


@dataclass(frozen=True)
class MatrixTrainConfig:
    """``[train]``: full-batch GD, time ``t = step * lr``."""

    lr: float = 0.02
    steps: int = 20000
    dtype: str = "float64"
    snapshots: int = 60  # log-spaced snapshot steps
    linear_snapshots: int = 300  # plus this many equally spaced ones


@dataclass(frozen=True)
class MatrixConfig:
    problem: ProblemConfig = field(default_factory=ProblemConfig)
    model: MatrixModelConfig = field(default_factory=MatrixModelConfig)
    init: MatrixInitConfig = field(default_factory=MatrixInitConfig)
    train: MatrixTrainConfig = field(default_factory=MatrixTrainConfig)

    @property
    def scales(self) -> tuple[float, ...]:
        if self.init.scales is not None:
            return self.init.scales
        return (self.init.scale if self.init.scale is not None else 1e-3,)

    @property
    def member_seeds_scales(self) -> list[tuple[int, float]]:
        seeds = self.init.seeds if self.init.seeds is not None else (self.init.seed,)
        return [(s, eps) for s in seeds for eps in self.scales]

    def to_dict(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for f in dataclasses.fields(self):
            sec = dataclasses.asdict(getattr(self, f.name))
            out[f.name] = {
                k: (list(v) if isinstance(v, tuple) else v) for k, v in sec.items() if v is not None
            }
        return out


SECTIONS = {
    "problem": ProblemConfig,
    "model": MatrixModelConfig,
    "init": MatrixInitConfig,
    "train": MatrixTrainConfig,
}


def _build_section(section: str, raw: dict[str, Any]):
    cls = SECTIONS[section]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for name, value in raw.items():
        if name not in fields:
            raise InputError(
                f"{section}.{name}", value, "unknown key", f"use one of: {', '.join(fields)}"
            )
        kwargs[name] = _coerce(section, name, value, str(fields[name].type))
    return cls(**kwargs)


def _validate(cfg: MatrixConfig) -> MatrixConfig:
    p, m, i, t = cfg.problem, cfg.model, cfg.init, cfg.train
    if p.kind not in KINDS:
        raise InputError("problem.kind", p.kind, "unknown problem kind", f"use one of {KINDS}")
    if p.path is None:
        n1, n2 = p.n, p.cols if p.cols is not None else p.n
        if n1 < 1:
            raise InputError("problem.n", p.n, "must be >= 1", "give a positive number of rows")
        if n2 < 1:
            raise InputError("problem.cols", p.cols, "must be >= 1", "give a positive column count")
        if p.rank < 1:
            raise InputError("problem.rank", p.rank, "must be >= 1", "give a rank >= 1")
        if p.rank > min(n1, n2):
            raise InputError(
                "problem.rank",
                p.rank,
                f"exceeds the dimension min({n1}, {n2}) = {min(n1, n2)}",
                f"give a rank <= {min(n1, n2)}",
            )
        if p.spectrum not in SPECTRA:
            raise InputError(
                "problem.spectrum", p.spectrum, "unknown spectrum", f"use one of {SPECTRA}"
            )
        if p.observed < 1:
            raise InputError(
                "problem.observed",
                p.observed,
                "no observed entries (empty mask)" if p.kind == "completion" else "no measurements",
                "observe at least one entry",
            )
        if p.kind == "completion" and p.observed > n1 * n2:
            raise InputError(
                "problem.observed",
                p.observed,
                f"more than the {n1 * n2} entries of a {n1}x{n2} matrix",
                f"give observed <= {n1 * n2}",
            )
    if m.depth < 1:
        raise InputError(
            "model.depth", m.depth, "must be >= 1 (number of factors)", "use depth >= 1"
        )
    if m.width is not None and m.width < 1:
        raise InputError("model.width", m.width, "must be >= 1", "give a positive hidden width")
    if i.scheme not in SCHEMES:
        raise InputError("init.scheme", i.scheme, "unknown init scheme", f"use one of {SCHEMES}")
    if i.scale is not None and not i.scale > 0:
        raise InputError("init.scale", i.scale, "must be > 0", "give a positive init scale eps")
    if i.scales is not None and any(not v > 0 for v in i.scales):
        raise InputError(
            "init.scales", list(i.scales), "every scale must be > 0", "use positive scales"
        )
    if i.scale is not None and i.scales is not None:
        raise InputError("init.scale", i.scale, "give only one of scale, scales", "remove one")
    if not t.lr > 0:
        raise InputError("train.lr", t.lr, "must be > 0", "give a positive learning rate")
    if t.steps < 1:
        raise InputError("train.steps", t.steps, "must be >= 1", "give a positive number of steps")
    if t.dtype not in ("float32", "float64"):
        raise InputError("train.dtype", t.dtype, "unknown dtype", 'use "float32" or "float64"')
    if t.snapshots < 2 or t.linear_snapshots < 0:
        raise InputError(
            "train.snapshots", t.snapshots, "need >= 2 log-spaced snapshots", "use snapshots >= 2"
        )
    return cfg


def matrix_config_from_dict(
    raw: dict[str, Any], overrides: list[str] | tuple[str, ...] = ()
) -> MatrixConfig:
    """Build and validate a :class:`MatrixConfig` from a nested dict plus ``--set`` items."""
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for item in overrides:
        section, key, value = parse_override(item)
        raw.setdefault(section, {})[key] = value
    sections = {}
    for section, body in raw.items():
        if section not in SECTIONS:
            raise InputError(
                section,
                body if not isinstance(body, dict) else "[...]",
                "unknown config section",
                f"use sections {', '.join(f'[{s}]' for s in SECTIONS)}",
            )
        if not isinstance(body, dict):
            raise InputError(section, body, "expected a table", f"write [{section}] then keys")
        sections[section] = _build_section(section, body)
    return _validate(MatrixConfig(**sections))


def load_matrix_config(
    path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()
) -> MatrixConfig:
    """Read a matrix TOML config (built-in defaults when ``path`` is None)."""
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise InputError("CONFIG", str(p), "no such file", "give the path of a TOML config")
        try:
            raw = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as e:
            raise InputError(
                "CONFIG", str(p), f"not valid TOML ({e})", "fix the TOML syntax"
            ) from None
    return matrix_config_from_dict(raw, overrides)
