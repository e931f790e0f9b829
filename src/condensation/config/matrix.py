"""Matrix-run configuration: ``[problem]``, ``[model]``, ``[init]``, ``[train]``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from condensation.config import numbers as inputs
from condensation.config.parse import read_toml
from condensation.config.paths import absolute_paths, anchor_paths
from condensation.config.sections import build_sections, build_tables, sections_to_dict
from condensation.config.train_checks import DEFAULT_HANDOFF, validate_train
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
    fast_forward: bool = False  # effective dynamics up to the hand-off, then GD
    handoff: float = DEFAULT_HANDOFF  # hand-off tolerance delta (training.fastforward)


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
        return sections_to_dict(self)


SECTIONS = {
    "problem": ProblemConfig,
    "model": MatrixModelConfig,
    "init": MatrixInitConfig,
    "train": MatrixTrainConfig,
}


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
    inputs.check_seed("problem.seed", p.seed)
    inputs.check_seed("init.seed", i.seed)
    for s in i.seeds or ():
        inputs.check_seed("init.seeds", s)
    if m.depth < 1:
        raise InputError(
            "model.depth", m.depth, "must be >= 1 (number of factors)", "use depth >= 1"
        )
    inputs.check_depth("model.depth", m.depth)
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
    validate_train(t)
    inputs.check_scales(
        "init.scales" if i.scales is not None else "init.scale",
        cfg.scales,
        m.depth,
        t.dtype,
        warn=False,
    )
    return cfg


def matrix_config_from_dict(
    raw: dict[str, Any], overrides: list[str] | tuple[str, ...] = ()
) -> MatrixConfig:
    """Build and validate a :class:`MatrixConfig` from a nested dict plus ``--set`` items.

    Args:
        raw: ``{section: {key: value}}`` as read from TOML (not changed).
        overrides: ``section.key=value`` items, applied in order.

    Returns:
        The validated :class:`MatrixConfig`.
    """
    _, sections = build_sections(raw, overrides, SECTIONS)
    return _validate(MatrixConfig(**sections))


def matrix_config_from_raw(raw: dict[str, Any]) -> MatrixConfig:
    """Build and validate a :class:`MatrixConfig` from a nested dict of values."""
    return _validate(MatrixConfig(**build_tables(raw, SECTIONS)))


PATH_KEYS = (("problem", "path"),)  # file paths a MatrixConfig holds


def load_matrix_config(
    path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()
) -> MatrixConfig:
    """Read a matrix TOML config (built-in defaults when ``path`` is None); file paths
    resolve as in :func:`condensation.config.network.load_config`.

    Args:
        path: the TOML config (None: the built-in defaults).
        overrides: ``section.key=value`` items.

    Returns:
        The validated :class:`MatrixConfig`.
    """
    raw = anchor_paths(read_toml(path), path, PATH_KEYS)
    return absolute_paths(matrix_config_from_dict(raw, overrides), PATH_KEYS)
