"""``small-layers``: which layers start small decides the escape-time law (THEORY §8).

Three cases of a three-layer tanh network ``f = a^T tanh(W tanh(B x))``, every
eps of a case in one compiled GD call and one batched effective solve:

- ``all``: ``B, W, a`` all ``eps G`` (``G`` standard normal, the same draw for
  every eps).  The effective field is quadratic: ``T* ∝ 1/eps`` (THEORY §2).
- ``output``: ``a`` at O(1) (``gain G / sqrt(m2)``), ``B, W`` at eps.
- ``input``: ``B`` at O(1) (``gain G / sqrt(d)``), ``W, a`` at eps.

The two logarithmic laws, derived here.  *Output layer O(1).*  While ``W`` and
``c = B z`` are small, ``a' = W c = O(eps^2)`` so ``a = a0``; with
``v = W^T a0`` the flow is ``v' = |a0|^2 c``, ``c' = |z|^2 v`` (times
``sigma'(0)^2 = 1``), a linear system with rates ``± |z| |a0|``.  The growing
mode reaches O(1) at ``t = log(1/eps)/(|z| |a0|) + O(1)``, the O(1) remainder
independent of eps (the state at which it reaches any fixed small size is, up to
``O(eps)``, the same for every eps).  So the escape time increases by
``ln(10)/(|z| |a0|)`` per decade of smaller eps (with an output multiplier
kappa, ``ln(10)/(kappa |z| |a0|)``).  *Input layer O(1).*  ``B`` barely moves
(``B' = O(eps^2)``) and the network is a two-layer *linear* network
``a^T W h`` on the frozen features ``h = tanh(B0 x)``: ``a' = W z_h``,
``W' = a z_h^T`` with ``z_h = (1/n) sum_i y_i tanh(B0 x_i)``, rate ``|z_h|``,
``ln(10)/|z_h|`` per decade.  The effective dynamics linearises ``tanh`` in
the first layer too, so its own rate is ``|B0 z|``: the input case is the one
where GD and the effective dynamics must disagree.  GD's discrete steps grow
by ``1 + lr r`` per step, a rate ``ln(1 + lr r)/lr``; the default lr keeps that
within 1.5 % of ``r``.  Every case has the same shapes and lr, so one compiled
GD loop and one compiled (spectral-form) effective solve serve all three.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from condensation.core.activations import ACTIVATIONS
from condensation.data import load_dataset
from condensation.effective.blowup import solve_polar_batch
from condensation.effective.system import build_system
from condensation.errors import InputError
from condensation.experiments import Figure, Progress, data_config, require_positive
from condensation.report import figures
from condensation.store.rundir import save_arrays
from condensation.training.network import snapshot_steps, train

NAME = "small-layers"
TITLE = "Which layers start small: 1/eps when all do, log(1/eps) when one is O(1)"
SECTION = "open-questions"
STORY = """
The escape time's law depends on which layers start small. With all three layers
at scale eps the effective dynamics is quadratic and the escape takes a time
proportional to 1/eps. With the output layer at O(1) the early flow is linear and
grows at rate |z| |a0|, so the escape takes log(1/eps)/(|z| |a0|) plus a constant:
each decade of smaller eps adds ln(10)/(|z| |a0|). With the input layer at O(1) the
network is, to leading order, a two-layer linear network on the frozen features
tanh(B0 x), growing at rate |z_h| = |mean(y tanh(B0 x))|; the effective dynamics,
which linearises tanh, predicts the rate |B0 z| instead and is expected to be off.
GD (escape: loss halved) and the effective blow-up time T* are measured for each
case over a range of eps and fitted against these laws (derived here; THEORY §8).
The fits are evidence on one data set and one initial draw, not a proof.
"""

DEFAULTS = {
    "all_eps_min": 1e-3,
    "all_eps_max": 1e-2,
    "large_eps_min": 1e-7,
    "large_eps_max": 1e-2,
    "n_eps": 5,
    "width": 20,  # both hidden layers
    "seed": 0,
    "data_seed": 0,
    "lr": 0.05,  # ln(1 + lr r)/lr within 1.5 % of the rate r; one compiled loop for all cases
    "large_gain": 1.0,  # an O(1) layer is drawn N(0, gain^2 / fan_in)
    "margin": 1.3,
}


def DATA_DEFAULT(p: dict) -> dict:  # noqa: N802 (the protocol's name)
    """The teacher set drawn from ``data_seed`` (data.* overrides it, for all three cases)."""
    return {"dataset": "teacher", "seed": p["data_seed"]}


QUICK = {"n_eps": 3, "all_eps_min": 2e-3, "large_eps_min": 1e-5}
SECONDS = (8, 24)  # quick: CPU s cold, one device (bench_reproduce 2026-12-05); default: earlier

FIGURES = (
    Figure(
        "figures/small_layers.png",
        "Escape time vs eps. Left: all three layers small, log-log, GD escape (dots) "
        "and effective T* (line), grey: slope -1. Middle: output layer O(1); right: "
        "input layer O(1): time vs log10(1/eps), GD and effective, with the predicted "
        "rates (dashes) drawn through the GD points' mean.",
        (
            "all_small_gd_slope",
            "all_small_effective_slope",
            "output_large_gd_increase_per_decade",
            "output_large_predicted_increase_per_decade",
            "output_large_gd_increase_relative_error",
            "output_large_effective_increase_per_decade",
            "input_large_gd_increase_per_decade",
            "input_large_predicted_increase_per_decade",
            "input_large_gd_increase_relative_error",
            "input_large_effective_increase_per_decade",
            "input_large_effective_predicted_increase_per_decade",
        ),
    ),
)

CASES = ("all", "output", "input")


def initial_params(case: str, eps, shapes, seed: int, gain: float) -> list[np.ndarray]:
    """``(B, W, a)`` of shape (E, ...) for every eps: one standard-normal draw ``G_k``
    per layer (the same for every eps); a small layer is ``eps G_k``, the O(1) one
    (``output``: a; ``input``: B; none for ``all``) ``gain G_k / sqrt(fan_in)``."""
    rng = np.random.default_rng(seed)
    draws = [rng.standard_normal(s) for s in shapes]
    large = {"all": None, "output": 2, "input": 0}[case]
    eps = np.asarray(eps, dtype=float)
    out = []
    for k, g in enumerate(draws):
        if k == large:
            out.append(np.repeat((gain / math.sqrt(g.shape[1]) * g)[None], eps.size, axis=0))
        else:
            out.append(eps[:, None, None] * g[None])
    return out


def _check(p: dict) -> None:
    for lo, hi in (("all_eps_min", "all_eps_max"), ("large_eps_min", "large_eps_max")):
        if not 0 < p[lo] < p[hi] < 1:
            raise InputError(lo, p[lo], f"need 0 < {lo} < {hi} < 1", "fix the eps range")
    if p["n_eps"] < 2:
        raise InputError("n_eps", p["n_eps"], "must be >= 2 to fit a law", "use n_eps >= 2")
    require_positive(p, ("width", "lr", "large_gain", "margin"))


def _fit_per_decade(eps, t) -> float:
    """Increase of ``t`` per decade of smaller eps (least squares on log10 eps)."""
    ok = np.isfinite(t)
    return -float(np.polyfit(np.log10(eps[ok]), t[ok], 1)[0]) if ok.sum() >= 2 else math.nan


def _fit_slope(eps, t) -> float:
    ok = np.isfinite(t) & (t > 0)
    return float(np.polyfit(np.log(eps[ok]), np.log(t[ok]), 1)[0]) if ok.sum() >= 2 else math.nan


def run(params: dict, out_dir: Path, progress: Progress) -> dict:
    p = params
    _check(p)
    data = load_dataset(data_config(p, DATA_DEFAULT(p)))
    act = ACTIVATIONS["tanh"]
    m = p["width"]
    shapes = [(m, data.d_in), (m, m), (1, m)]
    z_norm = float(np.linalg.norm(data.z))
    head: dict = {"z_norm": z_norm, "width": m}
    curves: dict = {}
    for case in CASES:
        pre = "all" if case == "all" else "large"
        eps = np.geomspace(p[f"{pre}_eps_min"], p[f"{pre}_eps_max"], p["n_eps"])
        lr = p["lr"]
        ps = initial_params(case, eps, shapes, p["seed"], p["large_gain"])
        systems = [
            build_system([w[i] for w in ps], data.z, activation=act, form="spectral")
            for i in range(eps.size)
        ]
        # T* alone is used: no per-step diagnostics (bit-for-bit the same solve, and a
        # smaller program to compile)
        sols = solve_polar_batch([s.problem() for s in systems], diag=None)
        t_eff = np.array([s.T_star if s.blew_up else math.nan for s in sols])
        b0, a0 = ps[0][0], ps[2][0, 0]
        z_h = data.y @ np.tanh(data.x @ b0.T) / data.x.shape[0]  # (m1,) features' drive
        rate_pred = {"all": math.nan, "output": z_norm * float(np.linalg.norm(a0)),
                     "input": float(np.linalg.norm(z_h))}[case]  # fmt: skip
        horizon = np.nanmax(t_eff) if np.any(np.isfinite(t_eff)) else 0.0
        if case != "all":
            horizon = max(horizon, math.log(1 / eps[0]) / rate_pred + 10.0)
        steps = math.ceil(p["margin"] * horizon / lr)
        r = train(
            ps, data.x, data.y, act=act.fn, lr=lr, steps=steps,
            snapshots=snapshot_steps(steps, 20, 20), track_final_stage=False,
            progress=lambda d, n=steps, c=case: progress(f"{c}: GD steps", d, n),
        )  # fmt: skip
        t_gd = r.escape_time
        curves[case] = (eps, t_gd, t_eff, rate_pred)
        save_arrays(
            out_dir / "arrays" / f"{case}.npz", eps=eps, gd_escape_time=t_gd,
            effective_T_star=t_eff, predicted_rate=np.float64(rate_pred), lr=np.float64(lr),
        )  # fmt: skip
        n_bad = int(np.sum(~np.isfinite(t_gd)))
        if case == "all":
            head.update(
                all_small_gd_slope=_fit_slope(eps, t_gd),
                all_small_effective_slope=_fit_slope(eps, t_eff),
                all_small_gd_escape_time_times_eps_mean=float(np.nanmean(t_gd * eps)),
                all_small_n_not_escaped=n_bad,
                all_small_steps=steps,
            )
            continue
        key = f"{case}_large"
        inc_gd, inc_eff = _fit_per_decade(eps, t_gd), _fit_per_decade(eps, t_eff)
        pred = math.log(10) / rate_pred
        head[f"{key}_rate"] = rate_pred
        head[f"{key}_gd_increase_per_decade"] = inc_gd
        head[f"{key}_predicted_increase_per_decade"] = pred
        head[f"{key}_gd_increase_relative_error"] = inc_gd / pred - 1.0
        head[f"{key}_gd_step_corrected_relative_error"] = inc_gd / (
            math.log(10) * lr / math.log1p(lr * rate_pred)
        ) - 1.0
        head[f"{key}_effective_increase_per_decade"] = inc_eff
        head[f"{key}_n_not_escaped"] = n_bad
        head[f"{key}_steps"] = steps
        if case == "output":
            head["output_large_a0_norm"] = float(np.linalg.norm(a0))
            head["output_large_effective_increase_relative_error"] = inc_eff / pred - 1.0
        else:
            pred_eff = math.log(10) / (float(np.linalg.norm(b0 @ data.z)))
            head["input_large_effective_predicted_increase_per_decade"] = pred_eff
            head["input_large_effective_increase_relative_error"] = inc_eff / pred_eff - 1.0
    _plot(out_dir / "figures" / "small_layers.png", curves, head)
    return head


def _plot(path, curves, head) -> None:
    fig, axs = figures.subplots(1, 3, figsize=(13, 3.9))
    eps, t_gd, t_eff, _ = curves["all"]
    ax = axs[0]
    ax.loglog(eps, t_gd, "o", color="C0", label=f"GD, slope {head['all_small_gd_slope']:.3f}")
    ax.loglog(eps, t_eff, "-", color="C1", label="effective T*")
    ok = np.isfinite(t_gd)
    if ok.any():
        ge, gt = np.exp(np.mean(np.log(eps[ok]))), np.exp(np.mean(np.log(t_gd[ok])))
        ax.loglog(eps, gt * ge / eps, "--", color="0.5", lw=0.8, label="slope -1")
    ax.set_title("all three layers at eps", fontsize=9)
    ax.set_xlabel("eps")
    figures.value_ticks(ax, eps)
    ax.set_ylabel("escape time")
    ax.legend(fontsize=7)
    for ax, case, title in ((axs[1], "output", "output layer O(1)"),
                            (axs[2], "input", "input layer O(1)")):  # fmt: skip
        eps, t_gd, t_eff, rate = curves[case]
        xs = np.log10(1 / eps)
        ax.plot(xs, t_gd, "o", color="C0", label="GD escape")
        ax.plot(xs, t_eff, "s-", color="C1", ms=4, label="effective T*")
        ok = np.isfinite(t_gd)
        if ok.any():
            x0, y0 = xs[ok].mean(), t_gd[ok].mean()
            ax.plot(xs, y0 + math.log(10) / rate * (xs - x0), "--", color="0.4", lw=0.9,
                    label=f"predicted {math.log(10) / rate:.3f}/decade")  # fmt: skip
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("log10(1/eps)")
        ax.legend(fontsize=7)
    figures.save(fig, path)
