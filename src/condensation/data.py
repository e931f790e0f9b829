"""Datasets: built-in synthetic sets and user files, plus ``z = mean(y x)``.

Built-ins (``[data] dataset = ...``):

- ``teacher``: ``x ~ U[-1, 1]^d``, ``y = tanh(w*.x) + 0.3 sin(3 x_1)`` with
  ``w* = 2 u``, ``u`` a unit vector drawn from ``data.seed``.
- ``teacher3``: ``x ~ U[-1, 1]^d`` (d >= 3), ``y = 1.5 tanh(2 q1.x) + 0.8 tanh(2
  q2.x) + 0.4 tanh(2 q3.x)``, centred, ``q_k`` orthonormal from ``data.seed``:
  three directions of decreasing strength, for the staircase (THEORY §10).
- ``sin``, ``cubic``, ``step``, ``gauss``: 1-D functions on an even grid of
  [-1, 1]: ``sin(pi x)``, ``x^3 - 0.5 x``, ``sign(x)``, ``exp(-8 x^2) - 0.3``.
- ``diabetes``: the standardised diabetes regression set (442 x 10), bundled
  with its provenance in :mod:`condensation.datasets` (``n``, ``d`` ignored).

User data: ``.npz`` with arrays ``x`` (n, d) and ``y`` (n,), or ``.csv`` whose
last column is y, read strictly by :func:`condensation.config.checks.load_csv` (an optional
header is a first row whose cells are all non-numeric; every other cell a finite
decimal number).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from condensation.config import checks as inputs
from condensation.config.network import DataConfig
from condensation.datasets import BUNDLED, bundled_path
from condensation.errors import InputError


@dataclass(frozen=True)
class Dataset:
    """A training set: inputs ``x``, targets ``y``, its name and whether a constant-1
    bias column was appended to ``x`` (``data.bias``)."""

    x: np.ndarray  # (n, d_in), d_in includes the bias column when bias = true
    y: np.ndarray  # (n,)
    name: str
    bias: bool

    @property
    def z(self) -> np.ndarray:
        """Target direction ``z = (1/n) sum_i y_i x_i`` on the (augmented) input."""
        return self.y @ self.x / self.x.shape[0]

    @property
    def d_in(self) -> int:
        """The input dimension, the bias column included."""
        return self.x.shape[1]


TEACHER3_STRENGTHS = (1.5, 0.8, 0.4)  # teacher3: y = sum a_k tanh(2 q_k . x), centred

_FUNCS = {
    "sin": lambda x: np.sin(np.pi * x),
    "cubic": lambda x: x**3 - 0.5 * x,
    "step": np.sign,
    "gauss": lambda x: np.exp(-8 * x**2) - 0.3,
}


def _builtin(cfg: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(cfg.seed)
    if cfg.dataset in BUNDLED:
        x, y = _load_file(str(bundled_path(cfg.dataset)))
    elif cfg.dataset == "teacher":
        x = rng.uniform(-1.0, 1.0, size=(cfg.n, cfg.d))
        u = rng.standard_normal(cfg.d)
        w_star = 2.0 * u / np.linalg.norm(u)
        y = np.tanh(x @ w_star) + 0.3 * np.sin(3.0 * x[:, 0])
    elif cfg.dataset == "teacher3":
        # three orthonormal directions of decreasing strength: a staircase of drops
        x = rng.uniform(-1.0, 1.0, size=(cfg.n, cfg.d))
        q, _ = np.linalg.qr(rng.standard_normal((cfg.d, 3)))
        y = sum(a * np.tanh(2.0 * x @ q[:, k]) for k, a in enumerate(TEACHER3_STRENGTHS))
        y = y - y.mean()
    else:
        x = np.linspace(-1.0, 1.0, cfg.n)[:, None]
        y = _FUNCS[cfg.dataset](x[:, 0])
    if cfg.noise > 0:
        y = y + cfg.noise * rng.standard_normal(y.shape)
    return x, y


def _load_file(path: str) -> tuple[np.ndarray, np.ndarray]:
    p = Path(path)
    if p.suffix == ".npz":
        f = inputs.load_npz(p, "data.path")
        missing = [k for k in ("x", "y") if k not in f]
        if missing:
            raise InputError(
                "data.path",
                path,
                f"missing array(s) {missing}; has {sorted(f)}",
                "save arrays named x (n, d) and y (n,)",
            )
        x = inputs.real_array("data.path", "x", f["x"])
        y = inputs.real_array("data.path", "y", f["y"])
    elif p.suffix == ".csv":
        arr = inputs.load_csv(p, "data.path")
        if arr.shape[1] < 2:
            raise InputError(
                "data.path",
                path,
                f"CSV has {arr.shape[1]} column(s)",
                "give inputs in the first columns and y in the last, separated by commas",
            )
        x, y = arr[:, :-1], inputs.real_array("data.path", "y", arr[:, -1])
        x = inputs.real_array("data.path", "x", x)
    elif not p.is_file():
        raise InputError("data.path", path, "no such file", "give an existing .npz or .csv file")
    else:
        raise InputError("data.path", path, "unknown file type", "use a .npz or .csv file")
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise InputError(
            "data.path",
            path,
            f"x has shape {x.shape}, y has shape {y.shape}",
            "give x of shape (n, d) and y of shape (n,) with the same n",
        )
    if x.shape[0] == 0:
        raise InputError("data.path", path, "no samples", "give at least one sample")
    if x.shape[1] == 0:
        raise InputError("data.path", path, "x has no columns (d = 0)", "give d >= 1 inputs")
    return x, y


def load_dataset(cfg: DataConfig) -> Dataset:
    """Build the dataset a ``[data]`` section describes."""
    if cfg.path is not None:
        x, y = _load_file(cfg.path)
        name = Path(cfg.path).name
    else:
        x, y = _builtin(cfg)
        name = cfg.dataset
    if cfg.bias:
        x = np.concatenate([x, np.ones((x.shape[0], 1))], axis=1)
    return Dataset(x=x, y=y, name=name, bias=cfg.bias)
