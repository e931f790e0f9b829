"""``blowup-rates``: the type-I rates near T* and how tight the energy bound is
(THEORY §4, the rate question of §7).

Trajectories: i.i.d. N(0, 1) three-layer effective states (width ``m``,
``|z| = 1``), solved by the reduced form through the blow-up in fixed-size
batches; ``E`` and ``rho`` are recorded at every solver step.  With
``tau = T* - t``:

- ``rho tau^2`` and ``E tau^3`` against ``tau``; the limit profile of §4
  (``a ~ alpha/(|z| tau)``, ``W ~ alpha beta^T/(|z| tau)``,
  ``B ~ beta zhat^T/(|z| tau)``) gives the limits ``3/|z|^2`` and ``1/|z|^2``
  (derived here from the profile), and ``rho >= 3/(|z|^2 tau^2)`` always;
- the energy bound ``E(t) <= E_ub(t)``,
  ``E_ub = |z| 3^(-3/2) (rho0^(-1/2) - |z| (t - t0)/sqrt(3))^(-3)``, from the
  first step ``t0`` with ``E > 0``, valid while the bracket is positive
  (up to ``T_b = t0 + sqrt(3)/(|z| sqrt(rho0)) <= T*``): the ratio ``E/E_ub``
  over those steps, its maximum per trajectory (how close the bound comes) and
  the minimum of that over trajectories (the largest constant ``k`` with
  ``sup_t E/E_ub >= k`` on every trajectory drawn: an empirical matching lower
  bound for the energy bound).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from condensation.experiments import Figure, Progress, require_counts
from condensation.experiments._batch import solve_chunked, standard_normal_systems
from condensation.report import figures
from condensation.store.rundir import save_arrays

NAME = "blowup-rates"
TITLE = "Blow-up rates: rho (T*-t)^2 and E (T*-t)^3, and how tight the energy bound is"
SECTION = "open-questions"
STORY = """
Near the blow-up time T* the effective three-layer dynamics is of type I: rho
grows like (T* - t)^-2 and the energy E like (T* - t)^-3. Over many trajectories
this plots rho (T* - t)^2 and E (T* - t)^3 against T* - t, with their limits
3/|z|^2 and 1/|z|^2 from the limit profile, and the ratio of E to the energy
upper bound of THEORY §4 while that bound is finite: its largest value on each
trajectory says how tight the bound is, and the smallest of those over the
trajectories is an empirical matching lower bound. Evidence on the trajectories
drawn, not a proof of a lower bound.
"""

DEFAULTS = {"n_trajectories": 256, "width": 6, "d": 4, "seed": 2}
QUICK = {"n_trajectories": 32}
# data.* keys are refused in one line, saying why
NO_DATA = "draws its effective states with |z| = 1 (no data set)"
SECONDS = (6, 5)  # quick: CPU s cold, one device (bench_reproduce 2026-12-05); default: earlier

FIGURES = (
    Figure(
        "figures/rates.png",
        "Left: rho (T*-t)^2 and E (T*-t)^3 against (T*-t)/T* for 20 trajectories, "
        "dashes: the limits 3/|z|^2 and 1/|z|^2. Right: histogram over trajectories of "
        "the largest ratio E/E_ub of the energy to its upper bound.",
        (
            "n_trajectories",
            "rho_tau2_final_median",
            "rho_tau2_limit",
            "E_tau3_final_median",
            "E_tau3_limit",
            "rho_tau2_min_over_all",
            "energy_bound_ratio_max_over_all",
            "energy_bound_tightness_min",
            "energy_bound_tightness_median",
        ),
    ),
)


def bound_ratio(t, e, rho, z_norm: float) -> np.ndarray:
    """``E / E_ub`` at the recorded steps from the first with ``E > 0`` while the
    bound is finite (NaN elsewhere)."""
    out = np.full(t.shape, np.nan)
    pos = np.nonzero(e > 0)[0]
    if pos.size == 0:
        return out
    i0 = pos[0]
    bracket = rho[i0] ** -0.5 - z_norm * (t - t[i0]) / math.sqrt(3.0)
    ok = (np.arange(t.size) >= i0) & (bracket > 0)
    out[ok] = e[ok] / (z_norm * 3.0**-1.5 * bracket[ok] ** -3)
    return out


def run(params: dict, out_dir: Path, progress: Progress) -> dict:
    p = params
    require_counts(p, ("n_trajectories", "width", "d"))
    rng = np.random.default_rng(p["seed"])
    m, d = p["width"], p["d"]
    systems, z = standard_normal_systems(rng, p["n_trajectories"], m, d)
    zn = 1.0
    progress("effective solves", 0, 1)
    sols = solve_chunked(systems)
    progress("effective solves", 1, 1)
    rho_fin, e_fin, rho_min, tight, ratio_max, curves = [], [], [], [], [], []
    for s in sols:
        if not s.blew_up:
            continue
        t, e, rho = s.steps["t"], s.steps["E"], s.steps["rho"]
        tau = s.T_star - t
        keep = tau > 1e-7 * s.T_star  # closer, the error of T* (about t_tol T*) shows in tau
        rt2, et3 = rho[keep] * tau[keep] ** 2, e[keep] * tau[keep] ** 3
        rho_fin.append(rt2[-1])
        e_fin.append(et3[-1])
        rho_min.append(np.min(rt2))
        r = bound_ratio(t, e, rho, zn)
        tight.append(np.nanmax(r) if np.any(np.isfinite(r)) else np.nan)
        ratio_max.append(np.nanmax(r) if np.any(np.isfinite(r)) else np.nan)
        if len(curves) < 20:
            curves.append((tau[keep] / s.T_star, rt2, et3))
    tight_a = np.array(tight)
    head = {
        "n_trajectories": len(sols),
        "n_blow_up": len(rho_fin),
        "rho_tau2_limit": 3.0 / zn**2,
        "E_tau3_limit": 1.0 / zn**2,
        "rho_tau2_final_median": float(np.median(rho_fin)),
        "rho_tau2_final_max_rel_dev": float(np.max(np.abs(np.array(rho_fin) / 3.0 - 1))),
        "E_tau3_final_median": float(np.median(e_fin)),
        "E_tau3_final_max_rel_dev": float(np.max(np.abs(np.array(e_fin) - 1.0))),
        "rho_tau2_min_over_all": float(np.min(rho_min)),  # the bound says >= 3/|z|^2
        "energy_bound_ratio_max_over_all": float(np.nanmax(ratio_max)),  # must be <= 1
        "energy_bound_tightness_min": float(np.nanmin(tight_a)),
        "energy_bound_tightness_median": float(np.nanmedian(tight_a)),
    }
    save_arrays(out_dir / "arrays" / "rates.npz", rho_tau2_final=np.array(rho_fin),
                E_tau3_final=np.array(e_fin), rho_tau2_min=np.array(rho_min),
                energy_bound_tightness=tight_a)  # fmt: skip
    fig, axs = figures.subplots(1, 2, figsize=(10, 3.8))
    for j, (q, rt2, et3) in enumerate(curves):
        axs[0].loglog(q, rt2, color="C0", lw=0.6, label="rho tau^2" if j == 0 else None)
        axs[0].loglog(q, et3, color="C1", lw=0.6, label="E tau^3" if j == 0 else None)
    axs[0].axhline(3.0, ls="--", color="C0", lw=0.8)
    axs[0].axhline(1.0, ls="--", color="C1", lw=0.8)
    axs[0].set_xlabel("(T* - t)/T*")
    axs[0].legend(fontsize=7)
    axs[1].hist(tight_a[np.isfinite(tight_a)], bins=30, color="0.4")
    axs[1].set_xlabel("max_t E / E_ub per trajectory")
    axs[1].set_ylabel("trajectories")
    figures.save(fig, out_dir / "figures" / "rates.png")
    return head
