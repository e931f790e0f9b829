"""``final-stage-necessity``: is the final-stage set of THEORY §5 entered by every
condensed trajectory, is each of its two constraints forward-invariant alone, and
which constraint GD violates at its plateau exit (the open questions of §7).

Effective part: ``n_effective`` initial conditions with i.i.d. N(0, 1) entries
(scale is irrelevant: the dynamics is homogeneous), width ``m``, ``|z| = 1``,
solved by the reduced form through the blow-up in fixed-size batches.  At every
solver step the solve records the number of neurons violating the
inner-product constraint ``s_j v_j > 0`` and of pairs violating the angle
constraint ``s_i s_j <W_:,i, W_:,j> >= 0``.  A trajectory is *condensed* when it
blew up with ``min_j |cos(b_j, z)| > 0.999`` at the last step (THEORY §5:
every ``|c_j| -> infinity``).  For three sets (both constraints: the final-stage
set; the inner-product constraint alone; the angle constraint alone) it counts
the trajectories that enter, the time before ``T*`` of the first entry, and the
*exits*: a step outside the set after a step inside it.  An exit of the full set
would contradict its forward invariance; exits of a reduced set say that the
other constraint is needed.  Checks are at the solver's steps (about a hundred
per trajectory), so a brief excursion between two steps is not seen.

GD part: three-layer tanh networks on the default teacher data (``data.*`` for
another set; the effective part has none), widths x eps x
seeds, trained with the plateau exit tracked inside the compiled loop; at the
plateau exit the per-constraint violation counts are those of
:func:`condensation.core.final_stage.final_stage_counts`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from condensation.commands.train import prepare
from condensation.config.network import config_from_dict
from condensation.core.final_stage import final_stage_counts
from condensation.errors import InputError
from condensation.experiments import (
    Figure,
    Progress,
    data_section,
    require_counts,
    require_positive,
)
from condensation.experiments._batch import solve_chunked, standard_normal_systems
from condensation.report import figures
from condensation.store.rundir import save_arrays
from condensation.training.network import train

NAME = "final-stage-necessity"
TITLE = "Final-stage condition: entered before T*? Each constraint invariant alone? GD's violations"
SECTION = "open-questions"
STORY = """
The final-stage condition (inner-product constraint s_j v_j > 0 for every neuron,
angle constraint between the sign-corrected columns of W) is sufficient for
condensation. Is it necessary, and is each constraint needed? Over hundreds of
effective three-layer trajectories integrated through their blow-up, this counts
how many condensed trajectories entered the final-stage set before T* and how
long before, and, for the set of each constraint alone, how many trajectories
left it again after entering (a reduced set that is left is not forward-invariant,
so the other constraint is needed for invariance). For gradient descent it counts,
per width and eps, how many neurons violate the inner-product constraint and how
many pairs violate the angle constraint at the plateau exit (loss down 10 %), so
one can see which constraint keeps GD out of the set. Checks are made at solver
steps and GD steps; the counts are evidence about the trajectories drawn, not
proofs.
"""

DEFAULTS = {
    "n_effective": 256,
    "width": 6,
    "d": 4,
    "seed": 0,
    "condensed_cos": 0.999,
    "gd_widths": [10, 30],
    "gd_eps": [1e-2, 3e-3],
    "gd_seeds": [0, 1],
    "gd_lr": 0.2,
    "gd_steps_factor": 2.0,  # steps = factor / (eps_min * lr), escape at about 0.6 / eps
}
# the GD part's data: the config's default teacher set (data.* overrides it)
DATA_DEFAULT: dict = {}
QUICK = {"n_effective": 32, "gd_widths": [10], "gd_eps": [1e-2, 5e-3], "gd_seeds": [0]}
SECONDS = (9, 32)  # quick: CPU s cold, one device (bench_reproduce 2026-12-05); default: earlier

FIGURES = (
    Figure(
        "figures/entry_and_exits.png",
        "Left: for condensed effective trajectories, time of first entry before T*, "
        "relative ((T* - t_entry)/T*), per set, the three sets side by side in each bin "
        "(the final-stage set is usually entered at the same step as the angle-only set, "
        "so those two bars are often equal). Right: trajectories that entered each set "
        "and that left it again afterwards (exits).",
        (
            "n_trajectories",
            "n_blow_up",
            "n_condensed",
            "n_condensed_entered_final_stage",
            "n_condensed_not_entered_final_stage",
            "median_entry_lead_relative",
            "n_exits_final_stage",
            "n_exits_inner_only",
            "n_exits_angle_only",
        ),
    ),
    Figure(
        "figures/gd_violations.png",
        "GD at the plateau exit, per width and eps (mean over seeds): neurons violating "
        "the inner-product constraint (left) and pairs violating the angle constraint "
        "(right, as a fraction of the m1 (m1 - 1)/2 pairs). The y axes start at 0; points "
        "on 0 mean no violation of that constraint. Points are shifted a little per width "
        "so that equal values stay visible.",
        ("gd_n_members", "gd_n_in_final_stage_at_plateau_exit", "gd_n_entered_before_plateau_exit"),
    ),
)

SETS = ("final_stage", "inner_only", "angle_only")


def _check(p: dict) -> None:
    require_counts(p, ("n_effective", "width", "d"))
    if not 0 < p["condensed_cos"] < 1:
        raise InputError("condensed_cos", p["condensed_cos"], "must be in (0, 1)", "e.g. 0.999")
    if any(e <= 0 for e in p["gd_eps"]) or any(w < 1 for w in p["gd_widths"]):
        raise InputError("gd_eps", p["gd_eps"], "eps and widths must be positive", "fix them")
    require_positive(p, ("gd_lr", "gd_steps_factor"))


def set_membership(steps: dict) -> dict[str, np.ndarray]:
    """Per solver step, whether the state is in each of the three sets."""
    inner_ok = steps["fs_inner_violations"] == 0
    angle_ok = steps["fs_angle_violations"] == 0
    return {"final_stage": inner_ok & angle_ok, "inner_only": inner_ok, "angle_only": angle_ok}


def entry_and_exits(inside: np.ndarray) -> tuple[int, int]:
    """(index of the first step inside, -1 if never; number of exits after it:
    steps outside that follow a step inside)."""
    idx = np.nonzero(inside)[0]
    if idx.size == 0:
        return -1, 0
    after = inside[idx[0]:]
    return int(idx[0]), int(np.sum(after[:-1] & ~after[1:]))


def _effective(p: dict, progress: Progress) -> tuple[dict, dict]:
    rng = np.random.default_rng(p["seed"])
    m, d = p["width"], p["d"]
    systems, z = standard_normal_systems(rng, p["n_effective"], m, d)
    progress("effective solves", 0, 1)
    sols = solve_chunked(systems)
    progress("effective solves", 1, 1)
    n = len(sols)
    blew = np.array([s.blew_up for s in sols])
    t_star = np.array([s.T_star for s in sols])
    condensed = blew & np.array([s.steps["min_abs_cos"][-1] > p["condensed_cos"] for s in sols])
    lead = {k: np.full(n, math.nan) for k in SETS}
    exits = {k: np.zeros(n, dtype=int) for k in SETS}
    entered = {k: np.zeros(n, dtype=bool) for k in SETS}
    for i, s in enumerate(sols):
        member = set_membership(s.steps)
        for k in SETS:
            first, n_exit = entry_and_exits(member[k])
            entered[k][i] = first >= 0
            exits[k][i] = n_exit
            if first >= 0 and blew[i]:
                lead[k][i] = (t_star[i] - s.steps["t"][first]) / t_star[i]
    head = {
        "n_trajectories": n,
        "n_blow_up": int(blew.sum()),
        "n_condensed": int(condensed.sum()),
        "n_blow_up_not_condensed": int((blew & ~condensed).sum()),
    }
    for k in SETS:
        head[f"n_condensed_entered_{k}"] = int((condensed & entered[k]).sum())
        head[f"n_condensed_not_entered_{k}"] = int((condensed & ~entered[k]).sum())
        head[f"n_exits_{k}"] = int((exits[k] > 0).sum())  # trajectories that left after entering
        head[f"n_exit_events_{k}"] = int(exits[k].sum())
        sel = condensed & np.isfinite(lead[k])
        med, low = (float(f(lead[k][sel])) if sel.any() else None for f in (np.median, np.min))
        head[f"median_entry_lead_relative_{k}"], head[f"min_entry_lead_relative_{k}"] = med, low
    head["median_entry_lead_relative"] = head["median_entry_lead_relative_final_stage"]
    arrays = {"blew_up": blew, "T_star": t_star, "condensed": condensed,
              **{f"lead_{k}": lead[k] for k in SETS}, **{f"exits_{k}": exits[k] for k in SETS},
              **{f"entered_{k}": entered[k] for k in SETS}}  # fmt: skip
    return head, arrays


def _gd(p: dict, progress: Progress) -> tuple[dict, list[dict]]:
    rows = []
    eps_list = [float(e) for e in p["gd_eps"]]
    steps = math.ceil(p["gd_steps_factor"] / (min(eps_list) * p["gd_lr"]))
    for width in p["gd_widths"]:
        cfg = config_from_dict({
            "data": data_section(p, DATA_DEFAULT),
            "model": {"depth": 3, "widths": [width, width]},
            "init": {"scales": eps_list, "seeds": list(p["gd_seeds"])},
            "train": {"lr": p["gd_lr"]},
        })  # fmt: skip
        data, spec, ens = prepare(cfg)
        r = train(
            ens.params, data.x, data.y, act=spec.activation.fn, lr=p["gd_lr"], steps=steps,
            snapshots=np.array([0, steps]),
            progress=lambda k, w=width: progress(f"GD width {w}", k, steps),
        )  # fmt: skip
        for i in range(ens.size):
            row = {"width": width, "eps": float(ens.scales[i]), "seed": int(ens.seeds[i]),
                   "plateau_exit_step": int(r.plateau_exit_step[i]),
                   "final_stage_step": int(r.final_stage_step[i])}  # fmt: skip
            if r.plateau_exit_step[i] >= 0:
                b, w, a = (np.asarray(q[i]) for q in r.plateau_exit_params)
                n_in, n_pairs = final_stage_counts(a[0], w, b @ data.z)
                row["inner_violations"], row["angle_violations"] = int(n_in), int(n_pairs)
            else:
                row["inner_violations"] = row["angle_violations"] = -1
            rows.append(row)
    ok = [r for r in rows if r["plateau_exit_step"] >= 0]
    head = {
        "gd_n_members": len(rows),
        "gd_n_exited_plateau": len(ok),
        "gd_n_in_final_stage_at_plateau_exit": sum(
            r["inner_violations"] == 0 and r["angle_violations"] == 0 for r in ok),
        "gd_n_inner_ok_at_plateau_exit": sum(r["inner_violations"] == 0 for r in ok),
        "gd_n_angle_ok_at_plateau_exit": sum(r["angle_violations"] == 0 for r in ok),
        "gd_n_entered_before_plateau_exit": sum(
            0 <= r["final_stage_step"] <= r["plateau_exit_step"] for r in ok),
        "gd_steps": steps,
    }  # fmt: skip
    for width in p["gd_widths"]:
        for e in eps_list:
            cell = [r for r in ok if r["width"] == width and r["eps"] == e]
            if cell:
                key = f"gd_w{width}_eps{e:.0e}".replace("-", "m").replace("+", "")
                head[f"{key}_mean_inner_violations"] = float(
                    np.mean([r["inner_violations"] for r in cell]))
                head[f"{key}_mean_angle_violations"] = float(
                    np.mean([r["angle_violations"] for r in cell]))  # fmt: skip
    return head, rows


def run(params: dict, out_dir: Path, progress: Progress) -> dict:
    p = params
    _check(p)
    head, arrays = _effective(p, progress)
    gd_head, rows = _gd(p, progress)
    head.update(gd_head)
    save_arrays(out_dir / "arrays" / "effective.npz", **arrays)
    save_arrays(
        out_dir / "arrays" / "gd_plateau_exit.npz",
        **{k: np.array([r[k] for r in rows]) for k in rows[0]},
    )
    plot_effective(out_dir / "figures" / "entry_and_exits.png", arrays, head)
    plot_gd(out_dir / "figures" / "gd_violations.png", rows, p)
    return head


def plot_effective(path, arrays, head) -> None:
    fig, axs = figures.subplots(1, 2, figsize=(figures.FIG_WIDTH, 4.0))
    cond = arrays["condensed"]
    leads, names = [], []
    for k in SETS:
        lead = arrays[f"lead_{k}"][cond & np.isfinite(arrays[f"lead_{k}"])]
        if lead.size:
            leads.append(np.log10(np.maximum(lead, 1e-16)))
            names.append(f"{k} ({lead.size})")
    if leads:  # side by side in each bin: equal counts (a set entered with another) stay visible
        axs[0].hist(leads, bins=15, label=names, color=[f"C{j}" for j in range(len(leads))])
        axs[0].legend(title="set (condensed entries)")
    axs[0].set_xlabel("log10 (T* - t_entry) / T*  (condensed trajectories)")
    axs[0].set_ylabel("trajectories")
    x = np.arange(len(SETS))
    n_ent = [int(arrays[f"entered_{k}"].sum()) for k in SETS]
    n_exit = [head[f"n_exits_{k}"] for k in SETS]
    axs[1].bar(x - 0.2, n_ent, 0.4, label="entered")
    axs[1].bar(x + 0.2, n_exit, 0.4, label="left again (exits)")
    for xi, v in zip(list(x - 0.2) + list(x + 0.2), n_ent + n_exit):
        axs[1].text(xi, v, str(v), ha="center", va="bottom")
    axs[1].set_xticks(x, SETS)
    axs[1].set_ylim(0, 1.25 * max(max(n_ent + n_exit), 1))
    axs[1].set_title(f"{head['n_trajectories']} trajectories")
    axs[1].legend(loc="upper center", ncol=2, frameon=False)
    figures.save(fig, path)


def plot_gd(path, rows, p) -> None:
    """Violations at the plateau exit against eps, per width (points shifted a little
    per width so that equal values stay visible; the y axis starts at 0 and shows
    at least one violation, so an all-zero row reads as zero, not as noise)."""
    fig, axs = figures.subplots(1, 2, figsize=(figures.FIG_WIDTH, 3.8))
    eps_list = sorted({float(e) for e in p["gd_eps"]})
    widths = list(p["gd_widths"])
    tops = [1.0, 0.1]
    for j, width in enumerate(widths):
        pairs = max(width * (width - 1) / 2, 1)
        inner, angle = [], []
        for e in eps_list:
            cell = [r for r in rows if r["width"] == width and r["eps"] == e
                    and r["plateau_exit_step"] >= 0]  # fmt: skip
            inner.append(np.mean([r["inner_violations"] for r in cell]) if cell else np.nan)
            angle.append(np.mean([r["angle_violations"] for r in cell]) / pairs if cell else np.nan)
        x = np.asarray(eps_list) * 10.0 ** (0.03 * (j - (len(widths) - 1) / 2))
        style = dict(marker="os^vD"[j % 5], mfc="none", ms=8, color=f"C{j}", label=f"width {width}")
        axs[0].semilogx(x, inner, **style)
        axs[1].semilogx(x, angle, **style)
        tops = [max(tops[0], np.nanmax(inner + [0])), max(tops[1], np.nanmax(angle + [0]))]
    axs[0].set_ylabel("neurons violating s_j v_j > 0")
    axs[1].set_ylabel("fraction of pairs violating\nthe angle constraint")
    for ax, top in zip(axs, tops):
        ax.set_ylim(-0.05 * top, 1.3 * top)
        ax.set_xlabel("eps (shifted a little per width)")
        figures.value_ticks(ax, eps_list)
        ax.legend(loc="upper center", ncol=len(widths), frameon=False)
    axs[0].set_title("inner-product constraint (mean over seeds)")
    axs[1].set_title("angle constraint (mean over seeds)")
    figures.save(fig, path)
