"""Network specifications and initialisation schemes.

Parameters are tuples ``(W1, ..., WL)`` (see :mod:`condensation.core.network`);
an ensemble stacks them on a leading member axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np

from condensation.config import checks as inputs
from condensation.config.network import Config, ModelConfig
from condensation.core.activations import Activation, get_activation
from condensation.errors import InputError, printable


@dataclass(frozen=True)
class NetworkSpec:
    """Depth, widths and activation of a fully connected network."""

    d_in: int
    widths: tuple[int, ...]  # hidden widths m_1 .. m_{L-1}
    activation: Activation

    @property
    def depth(self) -> int:
        """L, the number of weight matrices (hidden layers + 1)."""
        return len(self.widths) + 1

    @property
    def shapes(self) -> list[tuple[int, int]]:
        """Shapes of W1..WL: (m1, d_in), (m2, m1), ..., (1, m_{L-1})."""
        dims = [self.d_in, *self.widths, 1]
        return [(dims[k + 1], dims[k]) for k in range(len(dims) - 1)]

    @classmethod
    def from_config(cls, model: ModelConfig, d_in: int) -> NetworkSpec:
        """The network a ``[model]`` section describes, on inputs of dimension ``d_in``."""
        return cls(
            d_in=d_in, widths=tuple(model.widths), activation=get_activation(model.activation)
        )


DRAW_MIN = 1024  # the smallest number of normals drawn at once (see _draw_size)
DRAW_MAX_BUCKET = 2**22  # above this, exactly the count needed is drawn


def _draw_size(n: int) -> int:
    """How many normals to draw for ``n``: the next power of two (at least
    ``DRAW_MIN``), so that networks of many shapes share a few compiled draws (each
    distinct count is a program to compile, ~0.3 s), when JAX's counter-based
    ("partitionable") threefry makes the first ``n`` values of a longer draw the
    values of a draw of ``n``; otherwise exactly ``n``."""
    if not jax.config.jax_threefry_partitionable or n > DRAW_MAX_BUCKET:
        return n
    return max(DRAW_MIN, 1 << (n - 1).bit_length())


def standard_normal_params(spec: NetworkSpec, seed: int) -> list[np.ndarray]:
    """Unit-variance Gaussian parameters from ``seed`` (float64, platform-stable).

    Members with the same seed and different scales share these directions, so a
    sweep over eps changes only the scale.  Layer k is the first ``size`` values of
    ``jax.random.normal(key_k, (N,))`` for some ``N >= size`` (:func:`_draw_size`),
    which are the values of ``jax.random.normal(key_k, shape)``.
    """
    keys = jax.random.split(jax.random.PRNGKey(seed), spec.depth)
    out = []
    for k, shape in zip(keys, spec.shapes):
        n = int(np.prod(shape))
        flat = np.asarray(jax.random.normal(k, (_draw_size(n),), dtype=np.float64))
        out.append(flat[:n].reshape(shape))
    return out


def load_params(path: str, spec: NetworkSpec) -> list[np.ndarray]:
    """Explicit parameters from an ``.npz`` with arrays W1..WL of the spec's shapes."""
    f = inputs.load_npz(path, "init.path")
    out = []
    for k, shape in enumerate(spec.shapes, start=1):
        name = f"W{k}"
        if name not in f:
            raise InputError(
                "init.path",
                path,
                f"missing array {name}; has {sorted(f)}",
                f"save W1..W{spec.depth} for a depth-{spec.depth} network",
            )
        w = inputs.real_array(f"init.path:{name}", name, f[name])
        if w.shape != shape:
            raise InputError(
                f"init.path:{name}",
                list(w.shape),
                f"expected shape {list(shape)}",
                "match model.widths and the data's input dimension (bias column included)",
            )
        out.append(w)
    return out


@dataclass(frozen=True)
class Ensemble:
    """Initial parameters of all members, stacked on axis 0."""

    params: list[np.ndarray]  # W_k of shape (E, *shape_k)
    seeds: list[int | None]
    scales: list[float]
    layer_scales: tuple[float, ...] | None = None  # per-layer stds, when the config gives them

    @property
    def size(self) -> int:
        return self.params[0].shape[0]


def member_label(seed: int | None, scale: float, index: int, init_path: str | None) -> str:
    """How the console names an ensemble member, by its origin: ``seed 3 eps 0.001``,
    or for parameters loaded from ``init.path`` the file's name and the member's
    index, with the rms of its weights (``w0.npz member 0, rms 0.00102``).

    Args:
        seed: the member's init seed (None: loaded from ``init.path``).
        scale: its init scale (for a loaded member, the rms of its weights).
        index: its index in the ensemble (and in the file).
        init_path: the config's ``init.path`` (None: generated members).

    Returns:
        One printable label.
    """
    if seed is not None or init_path is None:
        return f"seed {seed} eps {scale:.3g}"
    return f"{printable(Path(init_path).name)} member {index}, rms {scale:.3g}"


def init_ensemble(cfg: Config, spec: NetworkSpec) -> Ensemble:
    """Every (seed, scale) member of the config, or the file's parameters."""
    if cfg.init.path is not None:
        ps = load_params(cfg.init.path, spec)
        rms = float(np.sqrt(np.mean(np.concatenate([w.ravel() for w in ps]) ** 2)))
        return Ensemble([w[None] for w in ps], [None], [rms])
    members = cfg.member_seeds_scales
    base = {s: standard_normal_params(spec, s) for s, _ in members}
    if cfg.init.antisymmetric:
        base = {s: antisymmetric(p) for s, p in base.items()}
    stds = cfg.layer_stds
    if stds is not None:  # one member per seed, layer k scaled by s_k
        params = [np.stack([stds[k] * base[s][k] for s, _ in members]) for k in range(spec.depth)]
    else:
        params = [np.stack([eps * base[s][k] for s, eps in members]) for k in range(spec.depth)]
    if cfg.init.balance is not None:
        params = rebalance(params, cfg.init.balance)
    return Ensemble(params, [s for s, _ in members], [eps for _, eps in members], stds)


def rebalance(params: list[np.ndarray], balance: float) -> list[np.ndarray]:
    """Rescale each hidden neuron's outgoing weights so that ``|out_j|^2 - |in_j|^2 =
    balance`` (the per-neuron conserved quantity of gradient flow for homogeneous
    activations; ``0``: balanced, as Kunin et al. 2024 sweep it), layer by layer from
    the first.  Members stacked on axis 0: ``W_k`` (E, m_k, m_{k-1}).  Mirrored
    neurons (``init.antisymmetric``) stay mirrored.

    >>> w = [np.array([[[3.0, 4.0]]]), np.array([[[2.0]]])]  # |in|^2 = 25, |out|^2 = 4
    >>> [float(np.sum(p**2)) for p in rebalance(w, 0.0)]
    [25.0, 25.0]
    """
    out = [np.array(p, dtype=float) for p in params]
    for k in range(len(out) - 1):
        incoming = np.sum(out[k] ** 2, axis=-1)  # (E, m_k)
        outgoing = np.sum(out[k + 1] ** 2, axis=-2)  # (E, m_k)
        target = incoming + balance
        if not np.all(target > 0) or not np.all(outgoing > 0):
            low = float(np.min(incoming))
            raise InputError(
                "init.balance",
                balance,
                f"a neuron of hidden layer {k + 1} has |incoming|^2 = {low:.3g}, and "
                "|outgoing|^2 = |incoming|^2 + balance must be > 0",
                f"give init.balance > {-low:.3g}",
            )
        out[k + 1] = out[k + 1] * np.sqrt(target / outgoing)[..., None, :]
    return out


def antisymmetric(params: list[np.ndarray]) -> list[np.ndarray]:
    """The last hidden layer made of two mirrored halves: its second half of neurons
    copies the first half's input weights and gets the negated output weights, so
    ``f(theta_0) = 0`` exactly (Luo et al. 2021).  Shapes are kept (width even)."""
    out = [np.array(p) for p in params]
    half = out[-1].shape[1] // 2
    out[-2][half:] = out[-2][:half]
    out[-1][:, half:] = -out[-1][:, :half]
    return out


def save_params(path: str | Path, params) -> None:
    """Write W1..WL to ``path`` (the interchange format of ``init.path``)."""
    np.savez(path, **{f"W{k + 1}": np.asarray(w) for k, w in enumerate(params)})
