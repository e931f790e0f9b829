"""``final-stage-vs-plateau``: when the final-stage condition is entered, against T* and GD."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from condensation.commands.effective import final_stage_summary
from condensation.commands.train import prepare
from condensation.config.network import config_from_dict
from condensation.effective.condensed import condensed_report
from condensation.effective.system import build_system, solve_batch, trajectory
from condensation.errors import InputError
from condensation.experiments import Figure, Progress, data_section, require_positive
from condensation.report import figures
from condensation.store.rundir import save_arrays
from condensation.training.network import snapshot_steps, train

NAME = "final-stage-vs-plateau"
TITLE = "The final-stage condition is entered at the very end of the plateau"
SECTION = "final-stage"
STORY = """
The final-stage condition (every first-layer neuron's inner-product constraint
s_j v_j > 0 and sign-corrected columns of W pairwise within 90 degrees) is a
sufficient condition for a condensed solution of the effective dynamics. Here it
is checked at every solver step of the effective dynamics and every GD step: for
random initial conditions it is entered only in the last few percent of the time
before the blow-up T*, never left again, and the solution ends condensed. On the
teacher data the GD escape time sits next to T*, and the deviation between the GD
and effective trajectories stays small until just before the escape.
"""

DATA_DEFAULT = {"dataset": "teacher"}  # data.* overrides it (e.g. data.path)
DEFAULTS = {
    "seeds": [0, 1, 2],
    "scales": [1e-3, 3e-4],
    "width": 50,
    "lr": 0.05,
    "random_ics": 20,
    "random_width_min": 10,
    "random_width_max": 100,
    "random_eps": 1e-3,
    "random_seed": 7,
}
QUICK = {"seeds": [0], "scales": [1e-3], "random_ics": 6, "random_width_max": 50}
SECONDS = (12, 93)  # quick: CPU s cold, one device (bench_reproduce 2026-12-05); default: earlier

FIGURES = (
    Figure(
        "figures/entry_vs_t_star.png",
        "Left: for random initial conditions (widths drawn from the range), how long "
        "before T* the final-stage set is entered, as a fraction of T*. Right: min_j "
        "|cos(b_j, z)| against T* - t: every first-layer weight aligns with z.",
        (
            "random_ic_count",
            "random_ic_all_entered_before_T_star",
            "random_ic_violations_after_entry_total",
            "random_ic_all_condensed",
            "random_ic_min_abs_cos_final_min",
            "random_ic_entry_fraction_before_T_star_max",
            "random_ic_entry_fraction_before_T_star_median",
        ),
    ),
    Figure(
        "figures/gd_vs_effective.png",
        "Teacher data: GD escape time and final-stage entry (GD and effective) "
        "relative to T* for every seed and scale (left), and the relative distance "
        "between GD and effective parameters over time for the first member (right).",
        (
            "gd_escape_over_T_star_mean",
            "gd_escape_over_T_star_max_deviation",
            "effective_entry_over_T_star_mean",
            "gd_final_stage_entry_over_escape_mean",
            "condensed_min_abs_cos_at_1e-6",
            "condensed_w_sigma_ratio_at_1e-6",
            "condensed_log_bound_min_ratio",
        ),
    ),
)


def _check(p: dict) -> None:
    if not 1 <= p["random_width_min"] <= p["random_width_max"]:
        raise InputError(
            "random_width_min",
            p["random_width_min"],
            "must be in [1, max]",
            "give 1 <= random_width_min <= random_width_max",
        )
    require_positive(p, ("width", "lr", "random_eps", "random_ics"))
    if any(not e > 0 for e in p["scales"]):
        raise InputError("scales", p["scales"], "every scale must be > 0", "use positive scales")


def _random_ics(p: dict, z: np.ndarray):
    """Zero-padded random networks: padding is an exact invariant subspace."""
    rng = np.random.default_rng(p["random_seed"])
    m, d, n = p["random_width_max"], z.size, p["random_ics"]
    b, w, a = np.zeros((n, m, d)), np.zeros((n, m, m)), np.zeros((n, 1, m))
    widths = rng.integers(p["random_width_min"], m + 1, size=(n, 2))
    for i, (m1, m2) in enumerate(widths):
        b[i, :m1] = rng.standard_normal((m1, d))
        w[i, :m2, :m1] = rng.standard_normal((m2, m1))
        a[i, 0, :m2] = rng.standard_normal(m2)
    eps = p["random_eps"]
    return [[eps * b[i], eps * w[i], eps * a[i]] for i in range(n)], widths


def _pad(net, m):
    """Zero-pad a three-layer network (B, W, a) to width m in both hidden layers."""
    b, w, a = net
    out = [np.zeros((m, b.shape[1])), np.zeros((m, m)), np.zeros((1, m))]
    out[0][: b.shape[0]] = b
    out[1][: w.shape[0], : w.shape[1]] = w
    out[2][:, : a.shape[1]] = a
    return out


def _finite_stat(stat, values) -> float:
    """``stat`` (a nan-ignoring reduction) of ``values``; NaN (stored as null) when no
    value is finite, e.g. no GD member entering the final stage on a user's data."""
    values = np.asarray(values, dtype=float)
    return float(stat(values)) if np.any(np.isfinite(values)) else float("nan")


def run(params: dict, out_dir: Path, progress: Progress) -> dict:
    p = params
    _check(p)
    cfg = config_from_dict(
        {
            "data": data_section(p, DATA_DEFAULT),
            "model": {"depth": 3, "widths": [p["width"]] * 2},
            "init": {"seeds": p["seeds"], "scales": p["scales"]},
            "train": {"lr": p["lr"]},
        }
    )
    data, spec, ens = prepare(cfg)
    z = data.z

    # 1. effective dynamics: random initial conditions and the teacher-data members,
    # zero-padded to one width (an exact invariant subspace) and solved in one batch
    progress("effective: random initial conditions and teacher data", 0, 3)
    nets, widths = _random_ics(p, z)
    members = [[w[i] for w in ens.params] for i in range(ens.size)]
    big = max(p["random_width_max"], p["width"])
    systems = [
        build_system(_pad(net, big), z, activation=spec.activation, form="reduced")
        for net in members + nets
    ]
    all_sols = solve_batch(systems)
    tsys, tsols = systems[: len(members)], all_sols[: len(members)]
    sols = all_sols[len(members) :]
    fs = [final_stage_summary(s.steps) for s in sols]
    t_star = np.array([s.T_star for s in sols])
    entry = np.array(
        [
            f["final_stage_entry_time"] if f["final_stage_entry_time"] is not None else np.nan
            for f in fs
        ]
    )
    frac_before = (t_star - entry) / t_star
    save_arrays(
        out_dir / "arrays" / "random_ics.npz",
        widths=widths,
        T_star=t_star,
        entry_time=entry,
        min_abs_cos_final=[f["min_abs_cos_final"] for f in fs],
    )

    # 2. teacher data: GD for every seed x scale beside the effective solutions
    progress("GD on teacher data", 1, 3)
    t_eff = np.array([s.T_star for s in tsols])
    e_eff = np.array(
        [final_stage_summary(s.steps)["final_stage_entry_time"] for s in tsols], dtype=float
    )
    steps = int(np.ceil(1.15 * np.max(t_eff) / p["lr"]))
    snaps = snapshot_steps(steps, 30, 150)
    progress("GD", 0, steps)
    gd = train(
        ens.params,
        data.x,
        data.y,
        act=spec.activation.fn,
        lr=p["lr"],
        steps=steps,
        snapshots=snaps,
        progress=lambda k: progress("GD", k, steps),
    )
    t_gd = gd.escape_time
    fs_gd = np.where(gd.final_stage_step >= 0, gd.final_stage_step * p["lr"], np.nan)

    # deviation GD vs effective over time (first member), and condensation near T*
    progress("effective: trajectories", 2, 3)
    keep = gd.snapshot_times < 0.999 * t_eff[0]
    ts = gd.snapshot_times[keep][1:]
    _, eff_params = trajectory(tsys[0], tsols[0], ts)
    m = p["width"]  # undo the padding
    eff_params = [eff_params[0][:, :m], eff_params[1][:, :m, :m], eff_params[2][:, :, :m]]
    num = sum(
        np.sum((g[0, keep][1:] - e) ** 2, axis=(-2, -1)) for g, e in zip(gd.snapshots, eff_params)
    )
    den = sum(np.sum(e**2, axis=(-2, -1)) for e in eff_params)
    deviation = np.sqrt(num / den)
    # the same padded query length as the trajectory above: one compiled solve for both
    entry0 = e_eff[0] if np.isfinite(e_eff[0]) else None
    cond = condensed_report(tsys[0], tsols[0], entry0, min_len=len(ts))
    save_arrays(
        out_dir / "arrays" / "teacher.npz",
        T_star=t_eff,
        gd_escape_time=t_gd,
        effective_entry=e_eff,
        gd_final_stage_entry=fs_gd,
        deviation_times=ts,
        deviation=deviation,
        **{f"condensed_{k}": v for k, v in cond.items()},
    )
    _plot(
        out_dir / "figures",
        frac_before,
        sols,
        t_star,
        t_eff,
        t_gd,
        e_eff,
        fs_gd,
        ts,
        deviation,
        ens,
    )
    progress("done", 3, 3)
    entered = np.isfinite(entry) & (entry < t_star)
    return {
        "random_ic_count": len(sols),
        "random_ic_all_blew_up": bool(all(s.blew_up for s in sols)),
        "random_ic_all_entered_before_T_star": bool(np.all(entered)),
        "random_ic_violations_after_entry_total": int(
            sum(f["final_stage_violations_after_entry"] or 0 for f in fs)
        ),
        "random_ic_all_condensed": bool(all(f["condensed"] for f in fs)),
        "random_ic_min_abs_cos_final_min": float(min(f["min_abs_cos_final"] for f in fs)),
        "random_ic_entry_fraction_before_T_star_max": _finite_stat(np.nanmax, frac_before),
        "random_ic_entry_fraction_before_T_star_median": _finite_stat(np.nanmedian, frac_before),
        "gd_escape_over_T_star_mean": float(np.mean(t_gd / t_eff)),
        "gd_escape_over_T_star_max_deviation": float(np.max(np.abs(t_gd / t_eff - 1))),
        "effective_entry_over_T_star_mean": _finite_stat(np.nanmean, e_eff / t_eff),
        "gd_final_stage_entry_over_escape_mean": _finite_stat(np.nanmean, fs_gd / t_gd),
        "condensed_min_abs_cos_at_1e-6": float(cond["min_abs_cos"][-1]),
        "condensed_w_sigma_ratio_at_1e-6": float(cond["w_sigma_ratio"][-1]),
        "condensed_log_bound_min_ratio": cond["log_bound_min_ratio"],
    }


def _plot(fig_dir, frac_before, sols, t_star, t_eff, t_gd, e_eff, fs_gd, ts, deviation, ens):
    fig, axs = figures.subplots(1, 2, figsize=(10, 4))
    axs[0].hist(frac_before[np.isfinite(frac_before)], bins=12, color="C0")
    axs[0].set_xlabel("(T* - final-stage entry) / T*")
    axs[0].set_ylabel("initial conditions")
    for sol, ts_ in zip(sols, t_star):
        st = sol.steps
        rem = ts_ - st["t"]
        ok = rem > 1e-12 * ts_
        axs[1].semilogx(rem[ok] / ts_, st["min_abs_cos"][ok], lw=0.8)
    axs[1].invert_xaxis()
    axs[1].set_xlabel("(T* - t) / T*")
    axs[1].set_ylabel("min_j |cos(b_j, z)|")
    figures.save(fig, fig_dir / "entry_vs_t_star.png")

    fig, axs = figures.subplots(1, 2, figsize=(10, 4))
    x = np.arange(len(t_eff))
    axs[0].plot(x, t_gd / t_eff, "o", label="GD escape / T*")
    axs[0].plot(x, e_eff / t_eff, "s", label="effective final-stage entry / T*")
    axs[0].plot(x, fs_gd / t_eff, "^", label="GD final-stage entry / T*")
    axs[0].axhline(1, color="k", lw=0.8, ls=":")
    axs[0].set_xticks(x, [f"s{s}\n{e:.0e}" for s, e in zip(ens.seeds, ens.scales)], fontsize=7)
    axs[0].legend(fontsize=7)
    axs[1].semilogy(ts / t_eff[0], deviation)
    axs[1].set_xlabel("t / T*")
    axs[1].set_ylabel("|theta_GD - theta_eff| / |theta_eff|")
    figures.save(fig, fig_dir / "gd_vs_effective.png")
