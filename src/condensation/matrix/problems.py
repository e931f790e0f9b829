"""Problems: completion masks, sensing operators, rank-r truths, ``.npz`` input, errors."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from condensation.config import checks as inputs
from condensation.config.matrix import ProblemConfig
from condensation.errors import InputError


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
        u, v = haar_columns(n1, rank, rng), haar_columns(n2, rank, rng)
        return math.sqrt(n1 * n2 / rank) * (u @ v.T)
    m = rng.standard_normal((n1, rank)) @ rng.standard_normal((n2, rank)).T
    return m * (math.sqrt(n1 * n2) / np.linalg.norm(m))


def haar_columns(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
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
    m = inputs.real_array(field, "M", m)
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
        mask = inputs.real_array(field, "mask", mask)
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
    a = inputs.real_array(field, "A", a)
    if a.ndim != 3 or a.shape[1:] != m.shape or a.shape[0] == 0:
        raise InputError(
            field,
            f"A of shape {a.shape}",
            f"A must be (k, {m.shape[0]}, {m.shape[1]}) with k >= 1 to match M",
            "give k >= 1 sensing matrices of the shape of M",
        )
    if not np.all(np.isfinite(a)):
        raise InputError(field, "A", "A has non-finite entries", "give finite sensing matrices")
    y = np.einsum("kij,ij->k", a, m) if y is None else inputs.real_array(field, "y", y)
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
    if path.suffix != ".npz":
        raise InputError("problem.path", p.path, "not an .npz file", "give an existing .npz file")
    arrays = inputs.load_npz(path, "problem.path")
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


def effective_rank_np(s: np.ndarray) -> np.ndarray:
    """Entropy effective rank over the last axis of singular values ``s`` (numpy)."""
    total = s.sum(axis=-1, keepdims=True)
    p = s / np.where(total > 0, total, 1.0)
    logp = np.log(np.where(p > 0, p, 1.0))
    return np.exp(-np.sum(p * logp, axis=-1))
