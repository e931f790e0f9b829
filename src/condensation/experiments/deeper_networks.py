"""``deeper-networks``: depth 4 and 5 (THEORY §7's "deeper networks" question).

Per depth L (``depths``), on the default teacher data (|z| = 0.4565; ``data.*``
for another set), tanh, all hidden widths ``width``, every layer ``eps G`` (``G``
standard normal, one draw per seed (numpy), the same for every eps):

- *Escape law.*  The effective field is homogeneous of degree L - 1, so the
  effective blow-up time is ``T*(eps) = T*(1) eps^-(L-2)`` (exactly, by scaling);
  it is solved (full form, :mod:`condensation.effective.deep`) over the wide range
  ``[eps_min, eps_max]`` and fitted.  GD's escape (loss halved) needs
  ``~T*/lr`` steps, i.e. ``~eps^-(L-2)`` steps, so GD is run only where it is
  affordable: the ``n_gd_eps`` values of eps at which the seed's own ``T*`` spans
  ``[gd_time_min, gd_time_max]`` (chosen from the wide solves by the scaling law),
  fitted per seed and compared with the effective ``T*`` at the same eps.
- *First-layer condensation.*  GD: median ``|cos(W1 rows, z)|`` at the plateau
  exit and at the escape, its running peak, and the alignment of W1's rows with
  W1's own top right-singular direction at the escape; effective: the median and
  minimum ``|cos|`` at the last solver step before ``T*``.
- *Sign conditions along the chain* (:mod:`condensation.core.chain`; derived in
  docs/open-questions.md).  ``n_effective`` effective trajectories with N(0, 1)
  entries: at every solver step the inner condition and each chain condition
  k = 3..L; per set (all of them, ``full``; each alone) how many trajectories
  entered, how long before ``T*``, and how many left again (an exit: a step
  outside after a step inside).  The same on GD's snapshots up to its escape.
  Checks are at solver steps (``median_solver_steps`` per trajectory, about 70)
  and snapshots, so an excursion between two of them is not seen.

Every effective solve of one depth has the same shapes and diagnostics, so one
compilation of the blow-up solver per depth serves the wide-range solves, the
GD-range solves and the random trajectories.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from condensation.core.activations import ACTIVATIONS
from condensation.core.metrics import abs_cos_to, top_direction_alignment
from condensation.data import load_dataset
from condensation.effective.deep import (
    build_deep_system,
    sign_condition_counts,
    sign_condition_sets,
)
from condensation.effective.theory import eps_for_t_star, t_star_at_unit_scale
from condensation.errors import InputError, NumericalError
from condensation.experiments import (
    Figure,
    Progress,
    data_config,
    require_counts,
    require_eps_range,
    require_positive,
)
from condensation.experiments._batch import solve_chunked
from condensation.experiments._deeper_figures import plot_condensation, plot_escape, plot_signs
from condensation.experiments.final_stage_necessity import entry_and_exits
from condensation.models import NetworkSpec
from condensation.store.rundir import save_arrays
from condensation.training.network import snapshot_steps, train

NAME = "deeper-networks"
TITLE = "Deeper networks: escape ~ eps^-(L-2), first-layer condensation, chain sign conditions"
SECTION = "open-questions"
STORY = """
For depth L the effective dynamics is homogeneous of degree L - 1, so its blow-up
time scales as eps^-(L-2): eps^-2 at depth 4, eps^-3 at depth 5. The effective T*
is fitted over a wide range of eps; gradient descent, whose plateau takes about
eps^-(L-2) / lr steps, is run only where that is affordable (eps chosen so that T*
lies between a few tens and a thousand time units) and its escape time (loss
halved) is fitted there and compared with T* at the same eps. At the plateau exit
and the escape it reports how condensed the first layer is (median |cos| of W1's
rows with z, and with W1's own top direction). Then it checks the sign conditions
derived here for depth L — every first-layer neuron's inner product s_j v_j > 0
and, for each partial product W_{k-1}...W_2 along the chain, sign-corrected
columns at most 90 degrees apart — along effective trajectories through their
blow-up and along GD up to its escape: how many trajectories enter the set and
how many leave it again. The counts and fits are evidence about the trajectories
drawn (and at the steps checked), not a proof of the scaling or of invariance.
"""

DEFAULTS = {
    "depths": [4, 5],
    "width": 8,  # every hidden layer
    "data_seed": 0,
    "seed": 0,  # the random effective trajectories
    "gd_seeds": [0, 1],  # the GD draws (gd_draw)
    "eps_min": 1e-4,  # effective T* fitted over [eps_min, eps_max]
    "eps_max": 1.0,
    "n_eps": 5,
    "gd_time_min": 30.0,  # GD's eps chosen so that T* spans [gd_time_min, gd_time_max]
    "gd_time_max": 600.0,
    "n_gd_eps": 4,
    "lr": 0.25,
    "margin": 1.3,  # GD steps = margin * max T* / lr
    # random effective trajectories per depth (sign conditions); with the
    # len(gd_seeds) * n_eps wide-range solves they fill whole solver chunks of 32
    "n_effective": 54,
    "condensed_cos": 0.999,
}


def DATA_DEFAULT(p: dict) -> dict:  # noqa: N802 (the protocol's name)
    """The teacher set drawn from ``data_seed`` (data.* overrides it, for every depth)."""
    return {"dataset": "teacher", "seed": p["data_seed"]}


# quick: depth 4 only (each depth costs one cold compilation of the blow-up solver)
QUICK = {"depths": [4], "n_effective": 29, "gd_seeds": [0], "n_gd_eps": 3, "gd_time_max": 200.0,
         "n_eps": 3}  # fmt: skip
SECONDS = (8, 45)  # quick: CPU s cold, one device (bench_reproduce 2026-12-05); default: earlier
MAX_DEPTH = 8

FIGURES = (
    Figure(
        "figures/escape_vs_eps.png",
        "Escape time vs eps, log-log, one panel per depth L: effective blow-up time T* "
        "(line, wide range), GD escape (loss halved; open markers, one colour and shape per "
        "seed, shifted sideways by a few percent per seed so that equal values stay "
        "visible) at the eps where GD is affordable, and the predicted slope -(L-2) (grey "
        "dashes, through the GD points).",
        (
            "d4_effective_slope",
            "d4_gd_slope",
            "d4_gd_over_effective_max_rel_dev",
            "d5_effective_slope",
            "d5_gd_slope",
            "d5_gd_over_effective_max_rel_dev",
        ),
    ),
    Figure(
        "figures/condensation.png",
        "First-layer condensation. Left, per depth: median over GD members of the median "
        "|cos(W1 rows, z)| at the plateau exit, at the escape and at its peak, of the "
        "alignment with W1's own top direction at the escape, and (effective) the median "
        "|cos| at the last step before T*. Right: each GD member's median |cos| at the "
        "escape (circles) and the plateau exit (crosses) against its eps (shifted a little "
        "per depth).",
        (
            "d4_gd_median_abs_cos_at_plateau_exit",
            "d4_gd_median_abs_cos_at_escape",
            "d4_gd_top_direction_alignment_at_escape",
            "d4_gd_median_abs_cos_at_escape_smallest_eps",
            "d4_effective_median_abs_cos_final",
            "d5_gd_median_abs_cos_at_plateau_exit",
            "d5_gd_median_abs_cos_at_escape",
            "d5_gd_top_direction_alignment_at_escape",
            "d5_gd_median_abs_cos_at_escape_smallest_eps",
            "d5_effective_median_abs_cos_final",
        ),
    ),
    Figure(
        "figures/sign_conditions.png",
        "Sign conditions along the chain, effective trajectories. Left: fraction of "
        "trajectories inside the full set vs (T* - t)/T*, per depth (one line style per "
        "depth, so equal curves stay visible). Right: per depth and "
        "set (full; inner alone; each chain condition k alone), trajectories that entered "
        "and that left again.",
        (
            "d4_n_trajectories",
            "d4_n_entered_full",
            "d4_n_exits_full",
            "d4_frac_stayed_full",
            "d4_gd_n_entered_full",
            "d4_gd_n_exits_full",
            "d5_n_trajectories",
            "d5_n_entered_full",
            "d5_n_exits_full",
            "d5_frac_stayed_full",
            "d5_gd_n_entered_full",
            "d5_gd_n_exits_full",
        ),
    ),
)


def _check(p: dict) -> None:
    for depth in p["depths"]:
        if not 3 <= depth <= MAX_DEPTH:
            raise InputError("depths", p["depths"], f"each depth must be in [3, {MAX_DEPTH}]",
                             "e.g. depths=[4, 5]")  # fmt: skip
    if len(set(p["depths"])) != len(p["depths"]):
        raise InputError("depths", p["depths"], "has a repeated depth", "list each depth once")
    require_eps_range(p)
    require_counts(p, ("width", "n_effective"))
    if p["n_gd_eps"] < 2:
        raise InputError("n_gd_eps", p["n_gd_eps"], "must be >= 2 to fit a slope", "use >= 2")
    require_positive(p, ("gd_time_min", "lr", "margin"))
    if not p["gd_time_min"] < p["gd_time_max"]:
        why = f"must be > gd_time_min = {p['gd_time_min']}"
        raise InputError("gd_time_max", p["gd_time_max"], why, "fix the range")
    if not 0 < p["condensed_cos"] < 1:
        raise InputError("condensed_cos", p["condensed_cos"], "must be in (0, 1)", "e.g. 0.999")


def fit_slope(eps, t) -> float:
    """Least-squares slope of ``log t`` against ``log eps`` (finite, positive points)."""
    eps, t = np.asarray(eps, float), np.asarray(t, float)
    ok = np.isfinite(t) & (t > 0)
    return float(np.polyfit(np.log(eps[ok]), np.log(t[ok]), 1)[0]) if ok.sum() >= 2 else math.nan


def set_statistics(sets: list[dict[str, np.ndarray]], t=None, t_star=None) -> dict:
    """Per set name: trajectories that entered, that left again (exits), and (with the
    times ``t`` per state and ``t_star`` per trajectory) the entry leads
    ``(T* - t_entry)/T*``.  ``sets``: one dict per trajectory (name -> (steps,) bool)."""
    out: dict = {}
    for name in sets[0]:
        entered = exited = 0
        leads = []
        for i, member in enumerate(sets):
            first, n_exit = entry_and_exits(member[name])
            entered += first >= 0
            exited += n_exit > 0
            if first >= 0 and t is not None and np.isfinite(t_star[i]):
                leads.append((t_star[i] - t[i][first]) / t_star[i])
        out[name] = {"entered": int(entered), "exits": int(exited), "leads": np.asarray(leads)}
    return out


def gd_draw(shapes, seed: int, depth: int) -> list[np.ndarray]:
    """One standard-normal draw ``G`` (W1..WL) of a GD seed; GD starts at ``eps G``."""
    rng = np.random.default_rng([seed, depth, 1])
    return [rng.standard_normal(s) for s in shapes]


def _depth(depth: int, p: dict, data, progress: Progress) -> tuple[dict, dict, dict]:
    m, z = p["width"], data.z
    act = ACTIVATIONS["tanh"]
    key = f"d{depth}"
    spec = NetworkSpec(d_in=data.d_in, widths=(m,) * (depth - 1), activation=act)
    draws = [gd_draw(spec.shapes, s, depth) for s in p["gd_seeds"]]
    rng = np.random.default_rng([p["seed"], depth])
    randoms = [[rng.standard_normal(s) for s in spec.shapes] for _ in range(p["n_effective"])]
    wide = np.geomspace(p["eps_min"], p["eps_max"], p["n_eps"])
    systems = [build_deep_system(ps, z, activation=act) for ps in randoms]
    systems += [build_deep_system([e * w for w in g], z, activation=act)
                for g in draws for e in wide]  # fmt: skip
    progress(f"depth {depth}: effective solves", 0, 2)
    sols = solve_chunked(systems)
    rand_sols, wide_sols = sols[: len(randoms)], sols[len(randoms):]
    t_wide = np.array([s.T_star for s in wide_sols]).reshape(len(draws), wide.size)
    # T*(1) per seed by the scaling law (only to choose GD's eps; T* there is solved below)
    t_one = np.nanmean(t_star_at_unit_scale(t_wide, wide, depth), axis=1)
    if not np.all(np.isfinite(t_one)):
        bad = [int(sd) for sd, t in zip(p["gd_seeds"], t_one) if not np.isfinite(t)]
        raise NumericalError(f"depth {depth}: the effective dynamics of GD seed(s) {bad} did "
                             "not blow up, so no eps range for GD can be chosen")  # fmt: skip
    lo = eps_for_t_star(t_one, p["gd_time_max"], depth)
    hi = eps_for_t_star(t_one, p["gd_time_min"], depth)
    gd_eps = np.stack([np.geomspace(a, b, p["n_gd_eps"]) for a, b in zip(lo, hi)])  # (S, n)
    gd_systems = [build_deep_system([e * w for w in g], z, activation=act)
                  for g, es in zip(draws, gd_eps) for e in es]  # fmt: skip
    t_eff_gd = np.array([s.T_star for s in solve_chunked(gd_systems)]).reshape(gd_eps.shape)
    progress(f"depth {depth}: effective solves", 2, 2)

    # ---- GD over seeds x eps, one compiled loop
    params0 = [np.stack([e * g[k] for g, es in zip(draws, gd_eps) for e in es])
               for k in range(depth)]  # fmt: skip
    horizon = float(np.nanmax(t_eff_gd))
    steps = math.ceil(p["margin"] * horizon / p["lr"])
    snaps = snapshot_steps(steps, 40, 60)
    r = train(
        params0, data.x, data.y, act=act.fn, lr=p["lr"], steps=steps, snapshots=snaps,
        track_final_stage=False,
        progress=lambda k: progress(f"depth {depth}: GD steps", k, steps),
    )  # fmt: skip
    t_gd = r.escape_time.reshape(gd_eps.shape)
    n_members = gd_eps.size
    cos_pe = [np.median(abs_cos_to(r.plateau_exit_params[0][i], z)) for i in range(n_members)]
    cos_esc = [np.median(abs_cos_to(r.escape_params[0][i], z)) for i in range(n_members)]
    top_esc = [top_direction_alignment(r.escape_params[0][i]) for i in range(n_members)]
    counts = sign_condition_counts(r.snapshots, z)  # (E, K) per key
    gd_sets = []
    for i in range(n_members):
        last = r.escape_step[i] if r.escape_step[i] >= 0 else steps
        keep = r.snapshot_steps <= last
        gd_sets.append(sign_condition_sets({k: v[i][keep] for k, v in counts.items()}, depth))
    gd_stats = set_statistics(gd_sets)

    # ---- the random effective trajectories: sign conditions and condensation
    blew = np.array([s.blew_up for s in rand_sols])
    t_star = np.array([s.T_star for s in rand_sols])
    sets = [sign_condition_sets(s.steps, depth) for s in rand_sols]
    stats = set_statistics(sets, [s.steps["t"] for s in rand_sols], t_star)
    med_final = np.array([s.steps["median_abs_cos"][-1] for s in rand_sols])
    min_final = np.array([s.steps["min_abs_cos"][-1] for s in rand_sols])
    condensed = blew & (min_final > p["condensed_cos"])

    rel = t_gd / t_eff_gd - 1.0
    gd_slopes = [fit_slope(es, ts) for es, ts in zip(gd_eps, t_gd)]
    head = {
        # per seed (each draw has its own T*(1)), then the mean over seeds
        f"{key}_effective_slope": float(np.mean([fit_slope(wide, ts) for ts in t_wide])),
        f"{key}_effective_slope_gd_range": float(
            np.mean([fit_slope(es, ts) for es, ts in zip(gd_eps, t_eff_gd)])),
        f"{key}_predicted_slope": -(depth - 2),
        f"{key}_gd_slope": float(np.mean(gd_slopes)),
        f"{key}_gd_slope_min": float(np.min(gd_slopes)),
        f"{key}_gd_slope_max": float(np.max(gd_slopes)),
        f"{key}_gd_over_effective_max_rel_dev": float(np.nanmax(np.abs(rel))),
        f"{key}_gd_over_effective_mean": float(np.nanmean(t_gd / t_eff_gd)),
        f"{key}_gd_eps_min": float(gd_eps.min()),
        f"{key}_gd_eps_max": float(gd_eps.max()),
        f"{key}_gd_steps": steps,
        f"{key}_gd_n_members": n_members,
        f"{key}_gd_n_not_escaped": int(np.sum(r.escape_step < 0)),
        f"{key}_gd_n_diverged": int(np.sum(r.diverged_step >= 0)),
        f"{key}_gd_median_abs_cos_at_plateau_exit": float(np.median(cos_pe)),
        f"{key}_gd_median_abs_cos_at_escape": float(np.median(cos_esc)),
        f"{key}_gd_peak_median_abs_cos": float(np.median(r.peak_median_abs_cos)),
        f"{key}_gd_top_direction_alignment_at_escape": float(np.median(top_esc)),
        f"{key}_gd_min_median_abs_cos_at_plateau_exit": float(np.min(cos_pe)),
        # at each seed's smallest eps (condensation grows as eps shrinks)
        f"{key}_gd_median_abs_cos_at_escape_smallest_eps": float(
            np.median(np.reshape(cos_esc, gd_eps.shape)[:, 0])),
        f"{key}_gd_median_abs_cos_at_plateau_exit_smallest_eps": float(
            np.median(np.reshape(cos_pe, gd_eps.shape)[:, 0])),
        f"{key}_n_trajectories": len(rand_sols),
        f"{key}_median_solver_steps": float(np.median([s.n_steps for s in rand_sols])),
        f"{key}_n_blow_up": int(blew.sum()),
        f"{key}_n_condensed": int(condensed.sum()),
        f"{key}_effective_median_abs_cos_final": float(np.median(med_final)),
        f"{key}_effective_min_abs_cos_final_min": float(np.min(min_final)),
    }
    for name, st in stats.items():
        head[f"{key}_n_entered_{name}"] = st["entered"]
        head[f"{key}_n_exits_{name}"] = st["exits"]
        if name == "full":
            leads = st["leads"]
            head[f"{key}_median_entry_lead_full"] = float(np.median(leads)) if leads.size else None
            head[f"{key}_min_entry_lead_full"] = float(np.min(leads)) if leads.size else None
    ent = stats["full"]["entered"]
    head[f"{key}_frac_stayed_full"] = (ent - stats["full"]["exits"]) / ent if ent else None
    for name, st in gd_stats.items():
        head[f"{key}_gd_n_entered_{name}"] = st["entered"]
        head[f"{key}_gd_n_exits_{name}"] = st["exits"]
    ent = gd_stats["full"]["entered"]
    head[f"{key}_gd_frac_stayed_full"] = (ent - gd_stats["full"]["exits"]) / ent if ent else None

    # inside the full set at (T* - t)/T* = q, per trajectory (last state at or before)
    q = np.geomspace(1.0, 1e-8, 41)
    inside = np.zeros((len(rand_sols), q.size), dtype=bool)
    for i, (s, member) in enumerate(zip(rand_sols, sets)):
        if blew[i]:
            idx = np.searchsorted(s.steps["t"], t_star[i] * (1 - q), side="right") - 1
            inside[i] = member["full"][np.clip(idx, 0, None)]
    arrays = {
        "wide_eps": wide, "wide_T_star": t_wide, "gd_eps": gd_eps, "gd_escape_time": t_gd,
        "gd_effective_T_star": t_eff_gd, "gd_median_abs_cos_at_plateau_exit": np.array(cos_pe),
        "gd_median_abs_cos_at_escape": np.array(cos_esc),
        "gd_top_direction_alignment_at_escape": np.array(top_esc),
        "gd_peak_median_abs_cos": r.peak_median_abs_cos, "T_star": t_star, "blew_up": blew,
        "median_abs_cos_final": med_final, "min_abs_cos_final": min_final,
        "q": q, "inside_full_at_q": inside,
        **{f"entered_{k}": np.array([v["entered"]]) for k, v in stats.items()},
        **{f"exits_{k}": np.array([v["exits"]]) for k, v in stats.items()},
        **{f"lead_{k}": v["leads"] for k, v in stats.items()},
    }  # fmt: skip
    curves = {"stats": stats, "gd_stats": gd_stats, "q": q, "inside": inside[blew]}
    return head, arrays, curves


def run(params: dict, out_dir: Path, progress: Progress) -> dict:
    p = params
    _check(p)
    data = load_dataset(data_config(p, DATA_DEFAULT(p)))
    head: dict = {"z_norm": float(np.linalg.norm(data.z)), "width": p["width"]}
    per_depth = {}
    for depth in p["depths"]:
        h, arrays, curves = _depth(depth, p, data, progress)
        head.update(h)
        save_arrays(out_dir / "arrays" / f"depth{depth}.npz", **arrays)
        per_depth[depth] = (arrays, curves)
    plot_escape(out_dir / "figures" / "escape_vs_eps.png", per_depth, head)
    plot_condensation(out_dir / "figures" / "condensation.png", per_depth, head)
    plot_signs(out_dir / "figures" / "sign_conditions.png", per_depth)
    return head
