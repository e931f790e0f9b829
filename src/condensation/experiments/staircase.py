"""``staircase``: every plateau, measured against eps and predicted where a closed
form exists (THEORY §10)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from condensation import matrix as mx
from condensation.commands.matrix import run_matrix
from condensation.commands.prepare import prepare_run
from condensation.commands.train import run_training
from condensation.config.network import config_from_dict
from condensation.core.staircase import mode_half_time, segment_stages
from condensation.data import load_dataset
from condensation.errors import InputError
from condensation.experiments import Figure, Progress, data_section, require_positive
from condensation.experiments._staircase_figures import plot_durations, plot_losses, plot_matrix
from condensation.store.rundir import save_arrays

NAME = "staircase"
TITLE = "The staircase: every plateau against eps, predicted where a closed form exists"
SECTION = "staircase"
STORY = """
Past the first plateau the loss falls in a staircase, one drop per direction
learned (THEORY §10). Deep matrix factorisation with M = diag(3, 2, 1), fully
observed, from eps I decouples into modes with a closed form: mode i reaches
half its value at a time known exactly, about 1/((L - 2) s_i eps^(L-2)) for depth
L >= 3 and log(s_i / eps^2) / (2 s_i) for depth 2, so the stages separate like
eps^-(L-2). GD matches it (first figure). Networks are another matter: on the
three-direction teacher (teacher3) the first plateau grows as eps shrinks (1/eps
at three layers, where the effective dynamics' T* predicts it; log(1/eps) at two,
at the rate ln(10)/|z| per decade the linear effective dynamics gives); the later
plateaus change little with eps (measured: within 8 % from eps 1e-3 to 1e-4 at
three layers, 1 % at two), because every neuron grows in stage 1 and the later
saddles are those of an O(1) network whose state hardly depends on eps. The
second figure shows the loss against the time since the first escape: the curves
of every eps nearly lie on top of each other. No closed-form prediction of those
later lengths is claimed here; the table gives their measured law and how much
of a run they take, which is what skipping them would save.
"""

DATA_DEFAULT = {"dataset": "teacher3", "n": 200, "d": 4}
DEFAULTS = {
    "eps": [1e-2, 1e-3, 1e-4],  # network init scales
    "depths": [2, 3],  # network depths
    "width": 30,
    "lr": 0.05,
    "seed": 1,
    "room": 1500.0,  # time after the first escape the run goes on for
    "linear_snapshots": 1500,
    "matrix_depths": [2, 3, 4],
    "matrix_eps": [1e-2, 1e-3, 1e-4],
    "matrix_lr": 0.01,
    "matrix_max_steps": 1_500_000,  # a (depth, eps) needing more GD steps is skipped
}
QUICK = {  # depth 2 networks only (no effective solve to compile), one matrix depth
    "eps": [1e-2, 1e-3],
    "depths": [2],
    "width": 20,
    "room": 400.0,
    "linear_snapshots": 400,
    "matrix_depths": [3],
    "matrix_eps": [1e-2],
    "matrix_max_steps": 100_000,
}
SECONDS = (7, 75)  # rough CPU s (quick, default) on one core, measured 2026-12-07

MATRIX_S = (3.0, 2.0, 1.0)  # the singular values of the diagonal target
MAX_SNAPSHOTS = 40_000  # linear snapshots of one network run at most
MIN_STEPS = 2000  # GD steps at least to the fastest mode's half-time
NUMERIC = ("eps", "escape_time", "t_star", "plateau_lengths")  # saved per network depth

FIGURES = (
    Figure(
        "figures/matrix_half_times.png",
        "Deep matrix factorisation, M = diag(3, 2, 1), identity init eps I: each mode's "
        "half-time against eps, closed form (lines) and GD (markers), per depth.",
        ("matrix_max_rel_err", "matrix_runs", "matrix_skipped"),
    ),
    Figure(
        "figures/network_staircase.png",
        "Networks on teacher3: the loss against the time since the first escape, one "
        "curve per eps (stages shaded for the smallest eps). After the first drop the "
        "curves nearly coincide: the later plateaus hardly depend on eps.",
        (
            "depth3_stage1_slope",
            "depth3_T_star_max_rel_err",
            "depth3_T_star_rel_err_at_eps_min",
            "depth2_stage1_per_decade",
            "depth2_stage1_per_decade_predicted",
        ),
    ),
    Figure(
        "figures/stage_durations.png",
        "Each stage's plateau length against eps (log-log): stage 1 grows like 1/eps "
        "(three layers) or log(1/eps) (two); the numbers say how much the later ones "
        "still change with eps.",
        (
            "depth3_later_max_rel_change",
            "depth2_later_max_rel_change",
            "depth3_first_plateau_share",
            "depth3_later_plateau_share",
        ),
    ),
)


def run(params: dict, out_dir: Path, progress: Progress) -> dict:
    p = params
    require_positive(p, ("width", "lr", "room", "linear_snapshots", "matrix_lr"))
    require_positive(p, ("matrix_max_steps",))
    _check_lists(p)
    out: dict = {}
    total = len(p["matrix_depths"]) * len(p["matrix_eps"]) + len(p["depths"]) * len(p["eps"])
    done = [0]

    def tick(what: str) -> None:
        progress(what, done[0], total)
        done[0] += 1

    matrix = _matrix_part(p, tick)
    out.update(matrix.pop("headline"))
    nets = {depth: _network_part(p, depth, tick) for depth in p["depths"]}
    for depth, res in nets.items():
        out.update({f"depth{depth}_{k}": v for k, v in res.pop("headline").items()})
    save_arrays(out_dir / "arrays" / "matrix_half_times.npz", **matrix)
    for depth, res in nets.items():
        save_arrays(
            out_dir / "arrays" / f"network_depth{depth}.npz",
            **{k: np.asarray(res[k], dtype=float) for k in NUMERIC},
        )
    fig_dir = out_dir / "figures"
    plot_matrix(fig_dir / "matrix_half_times.png", matrix, MATRIX_S)
    plot_losses(fig_dir / "network_staircase.png", nets)
    plot_durations(fig_dir / "stage_durations.png", nets)
    progress("done", total, total)
    return out


def _check_lists(p: dict) -> None:
    """The list parameters, before anything runs: network depths >= 2 (a depth-1
    network has no hidden layer) and every init scale in (0, 1)."""
    for d in p["depths"]:
        if d < 2:
            raise InputError("depths", d, "a network needs depth >= 2", "give depths of 2 or more")
    for key in ("eps", "matrix_eps"):
        for e in p[key]:
            if not 0 < e < 1:
                raise InputError(key, e, "must be in (0, 1): a small init", f"give {key} below 1")


# ---- matrices: the closed form --------------------------------------------------------
def _matrix_part(p: dict, tick) -> dict:
    m = np.diag(MATRIX_S)
    problem = mx.problem_from_arrays(m, np.ones_like(m), name="diag(3, 2, 1)")
    rows = []  # (depth, eps, mode, s, measured, closed form)
    skipped = 0
    for depth in p["matrix_depths"]:
        for eps in p["matrix_eps"]:
            tick(f"matrix depth {depth} eps {eps:g}")
            closed = [mode_half_time(s, eps**depth, depth) for s in MATRIX_S]
            # the closed form is gradient flow's; GD differs by O(lr s), so the
            # fastest mode gets at least MIN_STEPS steps to its half-time
            lr = min(float(p["matrix_lr"]), min(closed) / MIN_STEPS)
            steps = int(math.ceil(1.5 * max(closed) / lr))
            if steps > p["matrix_max_steps"]:
                skipped += 1
                continue
            cfg = mx.matrix_config_from_dict(
                {
                    "problem": {"n": 3, "observed": 9},
                    "model": {"depth": depth},
                    "init": {"scheme": "identity", "scale": float(eps)},
                    "train": {
                        "lr": lr,
                        "steps": steps,
                        "snapshots": 200,
                        "linear_snapshots": 2000,
                    },
                }
            )
            r = run_matrix(cfg, problem=problem, t_star=False, baseline=False).result
            measured = mx.half_times(r.snapshot_times, r.tracked_singular_values[0])
            for k, s in enumerate(MATRIX_S):
                rows.append((depth, eps, k + 1, s, measured[k], closed[k]))
    a = np.array(rows, dtype=float).reshape(-1, 6)
    rel = np.abs(a[:, 4] - a[:, 5]) / a[:, 5]
    head: dict = {
        "matrix_runs": int(len(rows) // len(MATRIX_S)),
        "matrix_skipped": skipped,
        "matrix_max_rel_err": float(np.max(rel)) if rel.size else None,
    }
    for depth in p["matrix_depths"]:
        sel = a[:, 0] == depth
        if sel.any():
            e_min = float(np.min(a[sel, 1]))
            at = sel & (a[:, 1] == e_min)
            head[f"matrix_depth{depth}_eps_min"] = e_min
            head[f"matrix_depth{depth}_max_rel_err_at_eps_min"] = float(np.max(rel[at]))
    return {
        "headline": head,
        "depth": a[:, 0],
        "eps": a[:, 1],
        "mode": a[:, 2],
        "s": a[:, 3],
        "measured": a[:, 4],
        "closed_form": a[:, 5],
    }


# ---- networks: measured laws ----------------------------------------------------------
def _network_part(p: dict, depth: int, tick) -> dict:
    """One run per eps: ``train.steps = "auto"`` (the predicted T*, fast-forwarded to
    it) plus ``room`` for depth >= 3; depth 2, plain GD over ``room`` plus the
    effective escape estimate."""
    eps_list = [float(e) for e in p["eps"]]
    curves, escapes, t_stars, stages, shares = [], [], [], [], []
    z = math.nan
    for eps in eps_list:
        tick(f"depth {depth} eps {eps:g}")
        raw = {
            "data": data_section(p, DATA_DEFAULT),
            "model": {"depth": depth, "widths": [p["width"]] * (depth - 1), "activation": "tanh"},
            "init": {"scale": eps, "seed": p["seed"]},
            "train": {"lr": p["lr"], "linear_snapshots": p["linear_snapshots"]},
        }
        room = int(math.ceil(p["room"] / p["lr"]))
        if depth >= 3:
            raw["train"].update(steps="auto", fast_forward=True)
            auto = prepare_run(config_from_dict(raw)).config.train.steps
            raw["train"]["steps"] = auto + room
            # linear snapshots span the whole run: as dense after the escape as asked
            # (the loss is kept at every one; the weights within train.save's bound)
            dense = p["linear_snapshots"] * (auto + room) / room
            raw["train"]["linear_snapshots"] = int(min(dense, MAX_SNAPSHOTS))
        else:
            z = float(np.linalg.norm(load_dataset(config_from_dict(raw).data).z))
            raw["train"]["steps"] = room + int(math.ceil(3 * math.log(1 / eps) / z / p["lr"]))
        run = run_training(prepare_run(config_from_dict(raw)))
        r = run.result
        t, loss = r.snapshot_times, r.snapshot_loss[0]
        esc = float(r.escape_time[0])
        escapes.append(esc)
        plan = run.plan.members[0] if run.plan is not None else None
        t_stars.append(np.nan if plan is None or plan.t_star is None else float(plan.t_star))
        st = _stages_after(t, loss, esc) if math.isfinite(esc) else []
        stages.append(st)
        curves.append((t, loss))
        if plan is not None and st:
            later = sum(s["drop_start_t"] - s["start_t"] for s in st[1:])
            shares.append((plan.handoff_time / t[-1], later / t[-1]))
        else:
            shares.append((np.nan, np.nan))
        del run, r  # this run's arrays go before the next run trains
    lengths = _plateau_lengths(stages, escapes)
    head = _laws(eps_list, escapes, t_stars, lengths, shares, depth)
    if depth == 2 and math.isfinite(z):
        # the linear effective dynamics (and AGF's first stage): weights grow like
        # e^(|z| t), so the first plateau gains ln(10)/|z| per decade of 1/eps
        pred = math.log(10) / z
        head["stage1_per_decade_predicted"] = pred
        got = head["stage1_per_decade"]
        head["stage1_per_decade_rel_err"] = None if got is None else abs(got - pred) / pred
    return {
        "headline": head,
        "eps": np.array(eps_list),
        "escape_time": np.array(escapes),
        "t_star": np.array(t_stars),
        "plateau_lengths": lengths,
        "curves": curves,
        "stages": stages,
    }


def _stages_after(t: np.ndarray, loss: np.ndarray, escape: float) -> list[dict]:
    """Stages from just before the first escape on (the rule's windows are fractions of
    the horizon it is given, so a first plateau ~1/eps long would blur the later ones);
    stage 1's plateau starts at 0."""
    cut = t >= 0.9 * escape
    st = segment_stages(t[cut], loss[cut])
    if st:
        st[0]["start_t"] = 0.0
    return st


def _plateau_lengths(stages: list[list[dict]], escapes) -> np.ndarray:
    """(n_eps, n_stages) plateau lengths, NaN where a run has fewer stages.  Stage 1's
    is the first escape time (the loss at half its initial value, exact to the step,
    and defined even where the rule sees no sharp drop), the later ones run from the
    end of the previous drop to the start of theirs."""
    k = max(1, max((len(s) for s in stages), default=0))
    out = np.full((len(stages), k), np.nan)
    out[:, 0] = escapes
    for i, st in enumerate(stages):
        for j, s in enumerate(st[1:], start=1):
            out[i, j] = s["drop_start_t"] - s["start_t"]
    return out


def _laws(eps, escapes, t_stars, lengths, shares, depth) -> dict:
    """Per stage: the log-log slope of its plateau length against eps, its increase per
    decade of 1/eps, and the relative change between the two smallest eps (the error
    of predicting it at the smallest eps by the eps-independence of §10)."""
    e = np.asarray(eps)
    order = np.argsort(-e)  # largest eps first
    e, lengths = e[order], lengths[order]
    counts = [int(np.sum(np.isfinite(r))) for r in lengths]  # stage 1 is the escape
    head: dict = {"stage_count_at_eps_min": counts[-1] if counts else 0}
    head["stage_counts_agree"] = len(set(counts)) <= 1
    for j in range(lengths.shape[1]):
        col = lengths[:, j]
        ok = np.isfinite(col) & (col > 0)
        slope = per_decade = change = None
        if ok.sum() >= 2:
            slope = float(np.polyfit(np.log10(e[ok]), np.log10(col[ok]), 1)[0])
            per_decade = float(np.polyfit(-np.log10(e[ok]), col[ok], 1)[0])
            a, b = col[ok][-2], col[ok][-1]
            change = float(abs(b - a) / b)
        head[f"stage{j + 1}_slope"] = slope
        head[f"stage{j + 1}_per_decade"] = per_decade
        head[f"stage{j + 1}_rel_change_at_eps_min"] = change
    later = [
        head[f"stage{j + 1}_rel_change_at_eps_min"]
        for j in range(1, lengths.shape[1])
        if head[f"stage{j + 1}_rel_change_at_eps_min"] is not None
    ]
    head["later_max_rel_change"] = max(later) if later else None
    ts, es = np.asarray(t_stars), np.asarray(escapes)
    ok = np.isfinite(ts) & np.isfinite(es)
    rel = np.abs(es - ts) / ts
    head["T_star_max_rel_err"] = float(np.max(rel[ok])) if ok.any() else None
    head["T_star_rel_err_at_eps_min"] = _finite(rel[order][-1]) if ok.any() else None
    if depth >= 3:
        sh = np.asarray(shares)[order]
        head["first_plateau_share"] = _finite(sh[-1, 0])
        head["later_plateau_share"] = _finite(sh[-1, 1])
    return head


def _finite(x) -> float | None:
    return float(x) if np.isfinite(x) else None
