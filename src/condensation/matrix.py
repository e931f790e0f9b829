"""Deep matrix factorisation and completion: condensation as low-rank bias (THEORY §6).

Problems
    ``completion``: a target ``M`` (n1, n2) seen on a 0/1 mask ``Omega``.
    ``sensing``: measurements ``y_i = <A_i, M>`` with sensing matrices ``A_i``.
    Built-in ground truths have rank r and are scaled so that
    ``|M|_F^2 = n1 n2`` (entries have unit mean square):
    ``spectrum = "gaussian"`` (default) is ``M = c G H^T`` with i.i.d. ``N(0, 1)``
    factors ``G`` (n1, r), ``H`` (n2, r) (the usual test matrices of the deep
    factorisation literature; distinct singular values), ``"flat"`` is
    ``M = sqrt(n1 n2 / r) U V^T`` with Haar-random orthonormal ``U``, ``V``
    (every non-zero singular value equal, effective rank exactly r).  Masks observe
    ``observed`` entries drawn uniformly without replacement; sensing matrices
    have i.i.d. ``N(0, 1/k)`` entries (k measurements), so ``E A^*(y) = M``.
    The truth is drawn before the mask/operator from one ``numpy`` generator
    seeded with ``seed``, so sweeping ``observed`` keeps the same ``M``.

Model and training
    ``X = W_L ... W_1`` (orientation and losses: :mod:`condensation.core.matrix`),
    full-batch GD on ``1/2 |P_Omega(X - M)|_F^2`` (a sum, not a mean), time
    ``t = step * lr``, compiled (``jit`` + ``fori_loop``) and vmapped over an
    ensemble of seeds x init scales, like :mod:`condensation.train`.

Measurements
    train loss, test RMSE over the unobserved entries (sensing: over all
    entries), relative Frobenius error, sorted singular values, singular
    values tracked in identity (``u_k^T X(t) v_k`` on the final product's
    singular vectors), entropy effective rank, nuclear norm, alignment of the
    rows of ``W1`` with ``v1`` (top right singular vector of ``M_O``), the time
    each tracked singular value first reaches half its final value, the escape
    time (``loss <= loss_0 / 2``, the network trainer's convention), the plateau
    exit time (``loss <= 0.9 loss_0``: with several comparable components the
    first blow-up removes less than half the loss), the effective ``T*`` and the
    final-stage entry time of the triple ``(W3^T u1, W2, W1 v1)`` (depth 3).

Baseline
    minimum-nuclear-norm completion ``min |X|_* s.t. A(X) = y`` by ADMM with
    singular value thresholding (numpy only).
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from condensation.config import _coerce, parse_override
from condensation.core import matrix as cm
from condensation.core.final_stage import final_stage_holds
from condensation.errors import InputError
from condensation.train import snapshot_steps

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


# ---- problems ------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    """A completion or sensing problem with its (full) ground truth ``m``."""

    kind: str
    m: np.ndarray  # (n1, n2) ground truth
    mask: np.ndarray | None = None  # (n1, n2) float 0/1, completion
    a: np.ndarray | None = None  # (k, n1, n2), sensing
    y: np.ndarray | None = None  # (k,), sensing
    name: str = "user"

    @property
    def shape(self) -> tuple[int, int]:
        return self.m.shape

    @property
    def n_observed(self) -> int:
        return int(self.mask.sum()) if self.kind == "completion" else int(self.y.shape[0])

    @property
    def m_obs(self) -> np.ndarray:
        """``M_O = A^*(y)``, minus the loss gradient at ``X = 0`` (``P_Omega(M)``)."""
        if self.kind == "completion":
            return self.mask * self.m
        return np.einsum("k,kij->ij", self.y, self.a)

    @property
    def test_mask(self) -> np.ndarray:
        """Entries the test error is taken over: unobserved ones (sensing: all)."""
        if self.kind == "completion":
            return 1.0 - self.mask
        return np.ones_like(self.m)

    def operator(self) -> tuple[np.ndarray, np.ndarray]:
        """The two arrays the compiled loss takes: (M, mask) or (A, y)."""
        if self.kind == "completion":
            return self.m, self.mask
        return self.a, self.y

    def loss(self, x: np.ndarray) -> float:
        if self.kind == "completion":
            r = self.mask * (x - self.m)
            return 0.5 * float(np.sum(r * r))
        r = np.einsum("kij,ij->k", self.a, x) - self.y
        return 0.5 * float(r @ r)


def low_rank_matrix(
    n1: int, n2: int, rank: int, rng: np.random.Generator, spectrum: str = "gaussian"
) -> np.ndarray:
    """A rank-``rank`` (n1, n2) matrix with ``|M|_F^2 = n1 n2`` (see the module docstring)."""
    if spectrum == "flat":
        u, v = _haar_columns(n1, rank, rng), _haar_columns(n2, rank, rng)
        return math.sqrt(n1 * n2 / rank) * (u @ v.T)
    m = rng.standard_normal((n1, rank)) @ rng.standard_normal((n2, rank)).T
    return m * (math.sqrt(n1 * n2) / np.linalg.norm(m))


def _haar_columns(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """(n, k) with orthonormal columns, Haar distributed (QR with the sign fix)."""
    q, r = np.linalg.qr(rng.standard_normal((n, k)))
    return q * np.where(np.diag(r) < 0, -1.0, 1.0)


def make_problem(p: ProblemConfig) -> Problem:
    """The generated problem of a validated ``[problem]`` section (no ``path``)."""
    n1, n2 = p.n, p.cols if p.cols is not None else p.n
    rng = np.random.default_rng(p.seed)
    m = low_rank_matrix(n1, n2, p.rank, rng, p.spectrum)
    name = f"rank-{p.rank} {n1}x{n2}"
    if p.kind == "completion":
        idx = rng.choice(n1 * n2, size=p.observed, replace=False)
        mask = np.zeros(n1 * n2)
        mask[idx] = 1.0
        return Problem("completion", m, mask=mask.reshape(n1, n2), name=name)
    a = rng.standard_normal((p.observed, n1, n2)) / math.sqrt(p.observed)
    return Problem("sensing", m, a=a, y=np.einsum("kij,ij->k", a, m), name=name)


def problem_from_arrays(
    m, mask=None, a=None, y=None, *, kind: str = "completion", field: str = "problem", name="user"
) -> Problem:
    """Validate user arrays into a :class:`Problem`; errors name ``field``."""
    m = np.asarray(m, dtype=float)
    if m.ndim != 2 or 0 in m.shape:
        raise InputError(
            field, f"M of shape {m.shape}", "M must be a non-empty 2-D matrix", "save M as (n1, n2)"
        )
    bad = ~np.isfinite(m)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise InputError(
            field,
            f"M[{i}, {j}] = {m[i, j]}",
            f"M has {int(bad.sum())} non-finite entries",
            "give finite values for every entry of M",
        )
    if kind == "completion":
        if mask is None:
            raise InputError(
                field, "no mask", "completion needs a mask", "save an array named mask"
            )
        mask = np.asarray(mask)
        if mask.shape != m.shape:
            raise InputError(
                field,
                f"mask of shape {mask.shape}",
                f"mask and M have different shapes ({mask.shape} vs {m.shape})",
                "give a mask of the same shape as M",
            )
        mask_f = np.asarray(mask, dtype=float)
        if not np.all((mask_f == 0) | (mask_f == 1)):
            raise InputError(
                field, "mask", "mask entries must be 0 or 1", "save a 0/1 or bool mask"
            )
        if mask_f.sum() == 0:
            raise InputError(
                field, "mask", "the mask has no observed entries", "observe at least one entry"
            )
        return Problem("completion", m, mask=mask_f, name=name)
    if a is None:
        raise InputError(field, "no A", "sensing needs sensing matrices A", "save A as (k, n1, n2)")
    a = np.asarray(a, dtype=float)
    if a.ndim != 3 or a.shape[1:] != m.shape or a.shape[0] == 0:
        raise InputError(
            field,
            f"A of shape {a.shape}",
            f"A must be (k, {m.shape[0]}, {m.shape[1]}) with k >= 1 to match M",
            "give k >= 1 sensing matrices of the shape of M",
        )
    if not np.all(np.isfinite(a)):
        raise InputError(field, "A", "A has non-finite entries", "give finite sensing matrices")
    y = np.einsum("kij,ij->k", a, m) if y is None else np.asarray(y, dtype=float)
    if y.shape != (a.shape[0],):
        raise InputError(
            field, f"y of shape {y.shape}", f"y must have shape ({a.shape[0]},)", "one y per A_i"
        )
    if not np.all(np.isfinite(y)):
        raise InputError(field, "y", "y has non-finite entries", "give finite measurements")
    return Problem("sensing", m, a=a, y=y, name=name)


def load_problem(p: ProblemConfig) -> Problem:
    """The problem of a validated ``[problem]`` section: generated, or read from ``path``."""
    if p.path is None:
        return make_problem(p)
    path = Path(p.path)
    if not path.is_file() or path.suffix != ".npz":
        raise InputError("problem.path", p.path, "no such .npz file", "give an existing .npz file")
    try:
        with np.load(path) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as e:  # a corrupt or non-npz file
        raise InputError(
            "problem.path", p.path, f"cannot read ({e})", "save with numpy.savez"
        ) from None
    if "M" not in arrays:
        raise InputError(
            "problem.path", p.path, f"no array M; has {sorted(arrays)}", "save the target as M"
        )
    if p.kind == "completion" and "mask" not in arrays:
        raise InputError(
            "problem.path", p.path, f"no array mask; has {sorted(arrays)}", "save a 0/1 mask"
        )
    return problem_from_arrays(
        arrays["M"],
        arrays.get("mask"),
        arrays.get("A"),
        arrays.get("y"),
        kind=p.kind,
        field="problem.path",
        name=path.name,
    )


# ---- initialisation ------------------------------------------------------------------
def factor_shapes(n1: int, n2: int, depth: int, width: int) -> list[tuple[int, int]]:
    """Shapes of ``W1 .. WL``: (h, n2), (h, h), ..., (n1, h); depth 1: [(n1, n2)]."""
    dims = [n2] + [width] * (depth - 1) + [n1]
    return [(dims[k + 1], dims[k]) for k in range(depth)]


def init_factors(
    shapes: list[tuple[int, int]], scheme: str, eps: float, seed: int
) -> list[np.ndarray]:
    """One member's initial factors (float64); see :class:`MatrixInitConfig`."""
    rng = np.random.default_rng(seed)
    if scheme == "gaussian":
        return [eps * rng.standard_normal(s) for s in shapes]
    if scheme == "identity":
        return [eps * np.eye(*s) for s in shapes]
    # balanced: W1 = c O1 V^T, Wk = c Ok O_{k-1}^T, WL = c U O_{L-1}^T, all partial isometries
    depth = len(shapes)
    n1, n2 = shapes[-1][0], shapes[0][1]
    h = shapes[0][0] if depth > 1 else max(n1, n2)
    r0 = min(n1, n2, h)
    c = eps * math.sqrt(h)
    frames = [_haar_columns(n2, r0, rng)]  # V, O1, ..., O_{L-1}, U
    frames += [_haar_columns(h, r0, rng) for _ in range(depth - 1)]
    frames.append(_haar_columns(n1, r0, rng))
    return [c * frames[k + 1] @ frames[k].T for k in range(depth)]


@dataclass(frozen=True)
class MatrixEnsemble:
    params: tuple[np.ndarray, ...]  # W_k stacked over members, (E, *shape_k)
    seeds: list[int]
    scales: list[float]

    @property
    def size(self) -> int:
        return len(self.seeds)


def init_ensemble(cfg: MatrixConfig, shape: tuple[int, int]) -> MatrixEnsemble:
    n1, n2 = shape
    width = cfg.model.width if cfg.model.width is not None else max(n1, n2)
    shapes = factor_shapes(n1, n2, cfg.model.depth, width)
    members = cfg.member_seeds_scales
    per = [init_factors(shapes, cfg.init.scheme, eps, s) for s, eps in members]
    params = tuple(np.stack([p[k] for p in per]) for k in range(len(shapes)))
    return MatrixEnsemble(params, [s for s, _ in members], [e for _, e in members])


# ---- compiled training ---------------------------------------------------------------
def _loss_fn(kind: str):
    return cm.completion_loss if kind == "completion" else cm.sensing_loss


def _make_interval(kind: str, lr: float, track_final_stage: bool):
    loss = _loss_fn(kind)

    def step(k, carry, op0, op1, u1, v1):
        params, loss0, esc_step, esc_w1, div_step, fs_step, exit_step = carry
        l, g = jax.value_and_grad(loss)(params, op0, op1)
        new = tuple(p - lr * gp for p, gp in zip(params, g))
        alive = div_step < 0
        finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(p)) for p in new]))
        ok = alive & jnp.isfinite(l) & finite
        div_step = jnp.where(alive & ~ok, k, div_step)
        escaped_now = alive & (esc_step < 0) & (l <= 0.5 * loss0)
        esc_step = jnp.where(escaped_now, k, esc_step)
        esc_w1 = jnp.where(escaped_now, params[0], esc_w1)
        left = alive & (exit_step < 0) & (l <= (1.0 - PLATEAU_EXIT) * loss0)
        exit_step = jnp.where(left, k, exit_step)
        if track_final_stage:
            a, w, c = cm.reduced_triple(params, u1, v1)
            fs_step = jnp.where(alive & (fs_step < 0) & final_stage_holds(a, w, c), k, fs_step)
        params = tuple(jnp.where(ok, n, p) for n, p in zip(new, params))
        return params, loss0, esc_step, esc_w1, div_step, fs_step, exit_step

    def interval(carry, op0, op1, u1, v1, start, stop):
        return jax.lax.fori_loop(start, stop, partial(step, op0=op0, op1=op1, u1=u1, v1=v1), carry)

    return interval


@partial(jax.jit, static_argnames=("kind", "lr", "track_final_stage"))
def _run_interval(carry, op0, op1, u1, v1, start, stop, *, kind, lr, track_final_stage):
    f = _make_interval(kind, lr, track_final_stage)
    return jax.vmap(f, in_axes=(0, None, None, None, None, None, None))(
        carry, op0, op1, u1, v1, start, stop
    )


@partial(jax.jit, static_argnames=("kind",))
def _measure(params, op0, op1, m, test_mask, v1, *, kind):
    """Per-member measurements of one snapshot (vmapped over members)."""
    loss = _loss_fn(kind)
    n_test = jnp.maximum(jnp.sum(test_mask), 1.0)

    def one(p):
        x = cm.product(p)
        err = x - m
        cos = cm.row_alignment(p[0], v1)
        return {
            "loss": loss(p, op0, op1),
            "x": x,
            "test_rmse": jnp.sqrt(jnp.sum(test_mask * err * err) / n_test),
            "rel_fro_error": jnp.linalg.norm(err) / jnp.linalg.norm(m),
            "median_abs_cos_v1": jnp.median(cos),
            "frac_abs_cos_v1_above_0_95": jnp.mean(cos > ALIGNED),
        }

    return jax.vmap(one)(params)


@dataclass(frozen=True)
class FactorisationResult:
    """A GD run over an ensemble; arrays have a leading member axis (E)."""

    lr: float
    steps: int
    snapshot_steps: np.ndarray  # (K,)
    series: dict[str, np.ndarray]  # name -> (E, K, ...): loss, x, singular_values, ...
    tracked_singular_values: np.ndarray  # (E, K, r): u_k(T)^T X(t) v_k(T)
    final_params: list[np.ndarray]  # W_k (E, *shape_k)
    escape_step: np.ndarray  # (E,) first step with loss <= loss_0 / 2, -1 if never
    plateau_exit_step: np.ndarray  # (E,) first step with loss <= (1 - PLATEAU_EXIT) loss_0
    escape_w1: np.ndarray  # (E, h, n2) W1 at the escape step
    diverged_step: np.ndarray  # (E,) -1 if none
    final_stage_step: np.ndarray  # (E,) depth 3: first step in the final-stage set, -1 otherwise

    @property
    def snapshot_times(self) -> np.ndarray:
        return self.snapshot_steps * self.lr

    @property
    def escape_time(self) -> np.ndarray:
        return np.where(self.escape_step >= 0, self.escape_step * self.lr, np.nan)


def top_singular_pair(m_obs: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """``(s1, u1, v1)`` of ``M_O``."""
    u, s, vt = np.linalg.svd(m_obs)
    return float(s[0]), u[:, 0], vt[0]


def train_factorisation(
    problem: Problem,
    params0,
    *,
    lr: float,
    steps: int,
    snapshots: np.ndarray | None = None,
    dtype: str = "float64",
    progress: Callable[[int], None] | None = None,
) -> FactorisationResult:
    """Full-batch GD on ``1/2 |A(X) - y|^2`` for every member of ``params0``.

    The escape step, divergence and (depth 3) the final-stage entry of the
    triple ``(W3^T u1, W2, W1 v1)`` are checked at every step inside the
    compiled loop; everything else is measured at the ``snapshots`` steps
    (default: 60 log-spaced and 300 equally spaced).
    """
    dt = jnp.float64 if dtype == "float64" else jnp.float32
    depth = len(params0)
    steps_k = snapshot_steps(steps, 60, 300) if snapshots is None else np.asarray(snapshots)
    if steps_k[0] != 0 or steps_k[-1] != steps or np.any(np.diff(steps_k) <= 0):
        raise ValueError("snapshot steps must increase strictly from 0 to steps")
    op0, op1 = (jnp.asarray(a, dt) for a in problem.operator())
    _, u1, v1 = top_singular_pair(problem.m_obs)
    u1j, v1j = jnp.asarray(u1, dt), jnp.asarray(v1, dt)
    mj, tmj = jnp.asarray(problem.m, dt), jnp.asarray(problem.test_mask, dt)
    params = tuple(jnp.asarray(p, dt) for p in params0)
    n_members = params[0].shape[0]
    meas = partial(_measure, kind=problem.kind)
    m0 = meas(params, op0, op1, mj, tmj, v1j)
    series = {k: [np.asarray(v)] for k, v in m0.items()}
    minus1 = -jnp.ones(n_members, dtype=jnp.int64)
    carry = (params, m0["loss"], minus1, params[0], minus1, minus1, minus1)
    run = partial(_run_interval, kind=problem.kind, lr=float(lr), track_final_stage=depth == 3)
    for start, stop in zip(steps_k[:-1], steps_k[1:]):
        carry = run(carry, op0, op1, u1j, v1j, jnp.int64(start), jnp.int64(stop))
        mk = meas(carry[0], op0, op1, mj, tmj, v1j)
        for k, v in mk.items():
            series[k].append(np.asarray(v))
        if progress is not None:
            progress(int(stop))
    params, loss0, esc_step, esc_w1, div_step, fs_step, exit_step = carry
    series = {k: np.stack(v, axis=1).astype(float) for k, v in series.items()}
    # singular values on the host: LAPACK's values-only SVD is far cheaper than XLA's
    sv = np.linalg.svd(series["x"], compute_uv=False)  # (E, K, min(n1, n2))
    series["singular_values"] = sv
    series["effective_rank"] = effective_rank_np(sv)
    series["nuclear_norm"] = sv.sum(axis=-1)
    esc_step, esc_w1 = np.asarray(esc_step).copy(), np.asarray(esc_w1).copy()
    div_step = np.asarray(div_step)
    late = (esc_step < 0) & (div_step < 0) & (series["loss"][:, -1] <= 0.5 * series["loss"][:, 0])
    esc_step[late] = steps
    esc_w1[late] = np.asarray(params[0])[late]
    # singular values in identity: project every snapshot on the final singular vectors
    tracked = []
    for e in range(n_members):
        u, _, vt = np.linalg.svd(series["x"][e, -1], full_matrices=False)
        tracked.append(np.einsum("ik,tij,jk->tk", u, series["x"][e], vt.T))
    return FactorisationResult(
        lr=float(lr),
        steps=int(steps),
        snapshot_steps=steps_k,
        series=series,
        tracked_singular_values=np.stack(tracked),
        final_params=[np.asarray(p, dtype=float) for p in params],
        escape_step=esc_step,
        plateau_exit_step=np.asarray(exit_step),
        escape_w1=esc_w1.astype(float),
        diverged_step=div_step,
        final_stage_step=np.asarray(fs_step),
    )


# ---- post-hoc measurements -----------------------------------------------------------
def effective_rank_np(s: np.ndarray) -> np.ndarray:
    """Entropy effective rank over the last axis of singular values ``s`` (numpy)."""
    total = s.sum(axis=-1, keepdims=True)
    p = s / np.where(total > 0, total, 1.0)
    logp = np.log(np.where(p > 0, p, 1.0))
    return np.exp(-np.sum(p * logp, axis=-1))


def half_times(times: np.ndarray, tracked: np.ndarray) -> np.ndarray:
    """First time each tracked singular value reaches half its final value, (r,).

    ``tracked`` is (K, r); linear interpolation between snapshots; NaN where the
    final value is not positive.
    """
    out = np.full(tracked.shape[1], np.nan)
    for k in range(tracked.shape[1]):
        s = tracked[:, k]
        target = 0.5 * s[-1]
        if not s[-1] > 0:
            continue
        j = int(np.argmax(s >= target))
        if j == 0:
            out[k] = times[0]
            continue
        s0, s1 = s[j - 1], s[j]
        out[k] = times[j - 1] + (target - s0) / (s1 - s0) * (times[j] - times[j - 1])
    return out


def row_alignment_np(rows: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``|cos(row_j, v)|`` for the rows of ``rows`` (m, d) and a unit vector ``v`` (numpy)."""
    nr = np.linalg.norm(rows, axis=-1)
    return np.abs(rows @ v) / np.where(nr > 0, nr, 1.0)


def longest_stretch_below(times: np.ndarray, values: np.ndarray, level: float):
    """Longest run of consecutive snapshots with ``values < level``: (t_start, t_end) or None."""
    best, start = None, None
    below = np.append(values < level, False)
    for j, b in enumerate(below):
        if b and start is None:
            start = j
        elif not b and start is not None:
            if best is None or times[j - 1] - times[start] > best[1] - best[0]:
                best = (float(times[start]), float(times[j - 1]))
            start = None
    return best


def _effective_field_args(factors, m_o):
    return cm.effective_field(factors, m_o)


def effective_blowup(factors, m_o):
    """Integrate the effective dynamics ``W' = grad <M_O, W_L..W_1>`` through its blow-up.

    ``factors`` ``(W1, ..., WL)`` with L >= 3 (the field has degree L - 1 >= 2);
    returns the integrator's result (``.blew_up``, ``.T_star``,
    ``.T_star_rel_error``), in the GD time ``t = step * lr``.
    """
    depth = len(factors)
    if depth < 3:
        raise ValueError(f"the effective dynamics blows up only for depth >= 3, got {depth}")
    y0 = tuple(jnp.asarray(w, jnp.float64) for w in factors)
    return _blowup(_effective_field_args, y0, depth - 1, jnp.asarray(m_o, jnp.float64))


def _blowup(fld, y0, degree, args):
    """The project's blow-up integrator, ``blowup(field, y0, degree, args)``."""
    from condensation.blowup import blowup

    return blowup(fld, y0, degree, args)


# ---- baseline: minimum nuclear norm --------------------------------------------------
@dataclass(frozen=True)
class NuclearResult:
    x: np.ndarray
    iterations: int
    converged: bool
    constraint_residual: float  # |A(X) - y| / |y|


def _svt(z: np.ndarray, tau: float) -> np.ndarray:
    u, s, vt = np.linalg.svd(z, full_matrices=False)
    s = np.maximum(s - tau, 0.0)
    k = int(np.count_nonzero(s))
    return (u[:, :k] * s[:k]) @ vt[:k]


def min_nuclear_norm(
    problem: Problem,
    *,
    tol: float = 1e-6,
    max_iter: int = 5000,
    rho: float | None = None,
    relax: float = 1.6,
) -> NuclearResult:
    """``min |X|_*`` subject to ``A(X) = y`` (completion: ``P_Omega(X) = P_Omega(M)``).

    ADMM on ``|X|_* + indicator(A(Z) = y)`` with the split ``X = Z``: an SVT step,
    a projection onto the affine constraint set and a dual step; the penalty
    ``rho`` is adapted by residual balancing.  Stops when both the primal
    residual ``|X - Z|`` and the dual residual ``rho |Z - Z_prev|`` are below
    ``tol |M_O|_F``.
    """
    m_o = problem.m_obs
    scale = float(np.linalg.norm(m_o))
    if problem.kind == "completion":
        obs = problem.mask.astype(bool)
        target = problem.m

        def project(x):
            out = x.copy()
            out[obs] = target[obs]
            return out
    else:
        a = problem.a.reshape(problem.a.shape[0], -1)
        gram = np.linalg.cholesky(a @ a.T)

        def project(x):
            r = problem.y - a @ x.ravel()
            lam = np.linalg.solve(gram.T, np.linalg.solve(gram, r))
            return x + (a.T @ lam).reshape(x.shape)

    rho = rho if rho is not None else 0.3 / np.linalg.norm(m_o, 2)
    z = project(np.zeros_like(m_o))
    w = np.zeros_like(m_o)  # scaled dual
    converged = False
    iterations = 0
    for iterations in range(1, max_iter + 1):  # noqa: B007 (reported below)
        x = _svt(z - w, 1.0 / rho)
        z_prev = z
        x_relaxed = relax * x + (1.0 - relax) * z_prev  # over-relaxation (Boyd et al. §3.4.3)
        z = project(x_relaxed + w)
        w = w + x_relaxed - z
        r_primal = np.linalg.norm(x - z)
        r_dual = rho * np.linalg.norm(z - z_prev)
        if r_primal < tol * scale and r_dual < tol * scale:
            converged = True
            break
        if r_primal > 10 * r_dual:
            rho, w = rho * 2.0, w / 2.0
        elif r_dual > 10 * r_primal:
            rho, w = rho / 2.0, w * 2.0
    if problem.kind == "completion":
        res = float(np.linalg.norm(problem.mask * (z - problem.m)))
        ynorm = float(np.linalg.norm(m_o))
    else:
        res = float(np.linalg.norm(np.einsum("kij,ij->k", problem.a, z) - problem.y))
        ynorm = float(np.linalg.norm(problem.y))
    # report X (the thresholded iterate) snapped onto the constraint set
    return NuclearResult(project(x), iterations, converged, res / max(ynorm, 1e-300))


def matrix_errors(problem: Problem, x: np.ndarray) -> dict[str, float]:
    """Test RMSE, relative Frobenius error, effective rank and nuclear norm of ``x``."""
    tm = problem.test_mask
    err = x - problem.m
    s = np.linalg.svd(x, compute_uv=False)
    return {
        "test_rmse": float(np.sqrt(np.sum(tm * err * err) / max(tm.sum(), 1.0))),
        "rel_fro_error": float(np.linalg.norm(err) / np.linalg.norm(problem.m)),
        "train_loss": problem.loss(x),
        "effective_rank": float(effective_rank_np(s)),
        "nuclear_norm": float(s.sum()),
    }


__all__ = [
    "FactorisationResult",
    "MatrixConfig",
    "MatrixEnsemble",
    "NuclearResult",
    "Problem",
    "effective_blowup",
    "factor_shapes",
    "half_times",
    "init_ensemble",
    "init_factors",
    "load_matrix_config",
    "load_problem",
    "longest_stretch_below",
    "low_rank_matrix",
    "make_problem",
    "matrix_config_from_dict",
    "matrix_errors",
    "min_nuclear_norm",
    "problem_from_arrays",
    "row_alignment_np",
    "top_singular_pair",
    "train_factorisation",
]
