"""``condensation matrix``: deep matrix factorisation runs, summaries, figures, experiment.

:func:`run_matrix` trains a config's ensemble, integrates the effective
dynamics of every member (depth >= 3) to its blow-up time ``T*`` and solves the
minimum-nuclear-norm baseline; :func:`write_matrix_run` writes config, arrays,
``summary.json`` and figures.  :func:`run_experiment` is the body of the
``matrix-completion`` experiment: test error and effective rank vs depth and
number of observations, singular-value trajectories, nuclear-norm baseline.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from condensation import matrix as mx
from condensation.config import checks as inputs
from condensation.effective import theory
from condensation.errors import InputError
from condensation.report import figures
from condensation.store.checkpoint import Checkpoint
from condensation.store.rundir import FIGURE_BYTES, save_arrays, write_json, write_toml
from condensation.training.network import snapshot_steps

N_REPORT = 10  # singular values / half times per member in summary.json
SIGNIFICANT = 1e-3  # half times are reported for sigma_k(T) >= this x sigma_1(T)
MAX_SAVED_PRODUCTS = 4_000_000  # X(t) snapshots are saved when E*K*n1*n2 <= this


@dataclass(frozen=True)
class MatrixRun:
    config: mx.MatrixConfig
    problem: mx.Problem
    ensemble: mx.MatrixEnsemble
    result: mx.FactorisationResult
    blowups: list[Any] | None  # per member (depth >= 3), else None
    baseline: mx.NuclearResult | None
    plan: Any = None  # hand-offs (training.fastforward.Plan) when train.fast_forward


def prepare(cfg: mx.MatrixConfig) -> tuple[mx.Problem, mx.MatrixEnsemble]:
    """Problem and initial ensemble of a validated config (raises InputError on bad files)."""
    problem = load_checked_problem(cfg)
    return problem, mx.init_ensemble(cfg, problem.shape)


def load_checked_problem(cfg: mx.MatrixConfig) -> mx.Problem:
    """The config's problem, its size checked against memory before it is built (a
    generated one) and before training (both)."""
    p = cfg.problem
    if p.path is None:
        inputs.check_matrix_memory(cfg, p.n, p.cols if p.cols is not None else p.n, p.observed)
    problem = mx.load_problem(p)
    inputs.check_matrix_memory(cfg, *problem.shape, problem.n_observed)
    check_drive(problem, "problem.path" if p.path is not None else "problem")
    inputs.check_scales(
        "init.scales" if cfg.init.scales is not None else "init.scale",
        cfg.scales,
        cfg.model.depth,
        cfg.train.dtype,
    )
    return problem


NO_DRIVE_RTOL = 1e-12  # |M_O| below this x the size of the terms summed into it: no drive


def has_drive(problem: mx.Problem) -> bool:
    """False where ``M_O`` (``P_Omega(M)``, or ``A^*(y)``), the drive of the effective
    dynamics, is zero up to rounding: every observed entry of ``M`` is 0, or the
    measurements cancel (``|A^*(y)| <= NO_DRIVE_RTOL sum_k |y_k| |A_k|_F``)."""
    m_o = np.asarray(problem.m_obs, dtype=np.float64)
    if problem.kind == "completion":
        return bool(np.any(m_o != 0))
    size = float(np.sum(np.abs(problem.y) * np.linalg.norm(problem.a, axis=(1, 2))))
    return bool(np.linalg.norm(m_o) > NO_DRIVE_RTOL * size)


def check_drive(problem: mx.Problem, field: str = "problem") -> None:
    """Refuse a problem without drive (:func:`has_drive`) before anything is computed:
    from a small init GD has nothing to fit (``X`` stays at 0), and the run's
    measures (escape, ``T*``, alignment with the top singular vector of ``M_O``) do
    not exist."""
    if has_drive(problem):
        return
    what = (
        "every observed entry of M is 0 (M_O = P(M) = 0)"
        if problem.kind == "completion"
        else "the measurements give A^*(y) = 0"
    )
    raise InputError(
        field,
        problem.name,
        f"{what}: the effective dynamics has no drive, so X stays at 0 and there is no "
        "escape, no T* and no singular direction to align with",
        "give a target with nonzero observed entries"
        if problem.kind == "completion"
        else "give measurements y that correlate with the sensing matrices A",
    )


def check_fast_forward_scales(ens: mx.MatrixEnsemble, depth: int) -> None:
    """Refuse ``train.fast_forward`` where a member's effective solve would run in a
    time unit ``|W(0)|^-(L-2)`` beyond float64 (a deep factorisation at a tiny init):
    its T* is beyond any GD horizon, and the hand-off cannot be placed on the grid."""
    if depth < 3:
        return
    for i in range(ens.size):
        n0 = math.sqrt(sum(float(np.sum(np.asarray(p[i], np.float64) ** 2)) for p in ens.params))
        log_unit = theory.log_time_unit(n0, depth - 1) if n0 > 0 else math.inf
        if log_unit > theory.LOG_UNIT_LIMIT:
            raise InputError(
                "train.fast_forward",
                True,
                f"member {i} (eps {ens.scales[i]:.3g}): the effective time unit "
                f"|W(0)|^-{depth - 2} = 10^{log_unit / math.log(10):.0f} is beyond float64, "
                "so T* is beyond any horizon and there is no hand-off to fast-forward to",
                "raise the init scale, or set train.fast_forward = false",
            )


def run_matrix(
    cfg: mx.MatrixConfig,
    progress: Callable[[int], None] | None = None,
    *,
    problem: mx.Problem | None = None,
    t_star: bool = True,
    baseline: bool = True,
    checkpoint: Checkpoint | None = None,
) -> MatrixRun:
    """Train, then ``T*`` of every member (depth >= 3) and the nuclear-norm baseline."""
    if problem is None:
        problem, ens = prepare(cfg)
    else:
        ens = mx.init_ensemble(cfg, problem.shape)
    t = cfg.train
    snaps = snapshot_steps(t.steps, t.snapshots, t.linear_snapshots)
    plan = None
    if t.fast_forward:
        from condensation.matrix.fastforward import plan as plan_handoffs

        check_fast_forward_scales(ens, cfg.model.depth)

        plan = plan_handoffs(
            problem, ens.params, lr=t.lr, steps=t.steps, snapshots=snaps, delta=t.handoff
        )
    result = mx.train_factorisation(
        problem,
        ens.params,
        lr=t.lr,
        steps=t.steps,
        snapshots=snaps,
        dtype=t.dtype,
        progress=progress,
        checkpoint=checkpoint,
        handoff=None if plan is None else plan.handoff,
    )
    blowups = None
    if t_star and cfg.model.depth >= 3:
        m_o = problem.m_obs
        blowups = [mx.effective_blowup([p[i] for p in ens.params], m_o) for i in range(ens.size)]
    base = mx.min_nuclear_norm(problem) if baseline else None
    return MatrixRun(cfg, problem, ens, result, blowups, base, plan)


def output_bytes(cfg: mx.MatrixConfig, problem: mx.Problem) -> float:
    """About how many bytes a matrix run directory (and its checkpoint) takes."""
    n1, n2 = problem.shape
    t = cfg.train
    k = len(snapshot_steps(t.steps, t.snapshots, t.linear_snapshots))
    e = len(cfg.member_seeds_scales)
    width = cfg.model.width if cfg.model.width is not None else max(n1, n2)
    factors = e * sum(a * b for a, b in mx.factor_shapes(n1, n2, cfg.model.depth, width))
    products = e * k * n1 * n2
    values = products + min(products, MAX_SAVED_PRODUCTS) + 3 * factors + 8 * n1 * n2
    return 8.0 * values + FIGURE_BYTES


def _opt(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def member_summaries(run: MatrixRun) -> list[dict]:
    r, cfg = run.result, run.config
    times = r.snapshot_times
    s = r.series
    tiny = float(inputs.dtype_limits(cfg.train.dtype).smallest_normal)
    x = s["x"]
    stuck = [  # gradients underflow and the product never moved: underflow to zero
        eps ** max(cfg.model.depth - 1, 1) < tiny and np.array_equal(x[i, -1], x[i, 0])
        for i, eps in enumerate(run.ensemble.scales)
    ]
    out = []
    for i in range(run.ensemble.size):
        sv = s["singular_values"][i, -1]
        tracked = r.tracked_singular_values[i]
        k = min(N_REPORT, sv.size)
        significant = sv[:k] >= SIGNIFICANT * sv[0] if sv[0] > 0 else np.zeros(k, bool)
        ht = mx.half_times(times, tracked[:, :k])
        esc = r.escape_step[i]
        fs = r.final_stage_step[i]
        b = run.blowups[i] if run.blowups is not None else None
        t_star = b.T_star if b is not None and b.blew_up else float("nan")
        esc_t = esc * r.lr if esc >= 0 else float("nan")
        ex = r.plateau_exit_step[i]
        exit_t = ex * r.lr if ex >= 0 else float("nan")
        plateau = mx.longest_stretch_below(times, s["effective_rank"][i], mx.PLATEAU_RANK)
        x0 = mx.row_alignment_np(r.escape_w1[i], run_v1(run)) if esc >= 0 else None
        out.append(
            {
                "seed": run.ensemble.seeds[i],
                "scale": run.ensemble.scales[i],
                "depth": cfg.model.depth,
                "status": "diverged"
                if r.diverged_step[i] >= 0
                else ("underflow" if stuck[i] else "ok"),
                "test_rmse": s["test_rmse"][i, -1],
                "rel_fro_error": s["rel_fro_error"][i, -1],
                "train_loss": s["loss"][i, -1],
                "loss_initial": s["loss"][i, 0],
                "effective_rank": s["effective_rank"][i, -1],
                "nuclear_norm": s["nuclear_norm"][i, -1],
                "singular_values": sv[:k],
                "half_times": [float(h) if ok else None for h, ok in zip(ht, significant)],
                "escape_time": _opt(esc_t),
                "T_star_effective": _opt(t_star),
                "T_star_rel_error": _opt(b.T_star_rel_error) if b is not None else None,
                "escape_over_T_star": _opt(esc_t / t_star),
                "plateau_exit_time": _opt(exit_t),
                "plateau_exit_over_T_star": _opt(exit_t / t_star),
                "final_stage_entry_time": float(fs * r.lr) if fs >= 0 else None,
                "rank_one_plateau": list(plateau) if plateau is not None else None,
                "median_abs_cos_v1_at_escape": float(np.median(x0)) if x0 is not None else None,
                "frac_abs_cos_v1_above_0_95_at_escape": (
                    float(np.mean(x0 > mx.ALIGNED)) if x0 is not None else None
                ),
                "median_abs_cos_v1_final": s["median_abs_cos_v1"][i, -1],
                **(
                    {}
                    if run.plan is None
                    else {
                        "fast_forward": run.plan.members[i].summary(
                            r.steps, int(esc) if esc >= 0 else None
                        )
                    }
                ),
            }
        )
    return out


def run_v1(run: MatrixRun) -> np.ndarray:
    return mx.top_singular_pair(run.problem.m_obs)[2]


def t_star_notes(run: MatrixRun) -> list[str]:
    """One line per member whose effective T* is beyond float64 (summary ``null``)."""
    if run.blowups is None:
        return []
    from condensation.training.fastforward import log10_t_star

    return [
        f"member {i} (seed {run.ensemble.seeds[i]}, eps {run.ensemble.scales[i]:.3g}): "
        f"effective T* = {theory.format_time(b.T_star, log10_t_star(b))}, "
        "recorded as null in T_star_effective"
        for i, b in enumerate(run.blowups)
        if b.blew_up and not math.isfinite(b.T_star)
    ]


def summary(run: MatrixRun) -> dict:
    cfg, pb = run.config, run.problem
    s_obs = np.linalg.svd(pb.m_obs, compute_uv=False)
    s_m = np.linalg.svd(pb.m, compute_uv=False)
    out = {
        "kind": "matrix",
        "problem": pb.kind,
        "name": pb.name,
        "shape": list(pb.shape),
        "n_observed": pb.n_observed,
        "rank_M": int(np.sum(s_m > 1e-10 * s_m[0])),
        "singular_values_M": s_m[:N_REPORT],
        "singular_values_M_obs": s_obs[:N_REPORT],
        "s1": float(s_obs[0]),
        "depth": cfg.model.depth,
        "width": int(run.ensemble.params[0].shape[1]) if cfg.model.depth > 1 else None,
        "init_scheme": cfg.init.scheme,
        "lr": cfg.train.lr,
        "steps": cfg.train.steps,
        "dtype": cfg.train.dtype,
        "fast_forward": cfg.train.fast_forward,
        "handoff": cfg.train.handoff if cfg.train.fast_forward else None,
        "notes": [*([] if run.plan is None else run.plan.notes), *t_star_notes(run)],
        "members": member_summaries(run),
    }
    if run.baseline is not None:
        out["nuclear_norm_baseline"] = {
            **mx.matrix_errors(pb, run.baseline.x),
            "iterations": run.baseline.iterations,
            "converged": run.baseline.converged,
        }
    return out


def write_matrix_run(run: MatrixRun, out: Path) -> dict:
    """Write config, arrays, summary.json and figures into ``out`` (exists, empty)."""
    r, pb = run.result, run.problem
    write_toml(out / "config.toml", run.config.to_dict())
    (out / "arrays").mkdir()
    series = {k: v for k, v in r.series.items() if k != "x"}
    save_arrays(
        out / "arrays" / "series.npz",
        steps=r.snapshot_steps,
        times=r.snapshot_times,
        tracked_singular_values=r.tracked_singular_values,
        **series,
    )
    x = r.series["x"]
    if x.size <= MAX_SAVED_PRODUCTS:
        save_arrays(out / "arrays" / "products.npz", times=r.snapshot_times, X=x)
    else:
        save_arrays(out / "arrays" / "products.npz", times=r.snapshot_times[-1:], X=x[:, -1:])
    save_arrays(
        out / "arrays" / "final_factors.npz",
        escape_step=r.escape_step,
        plateau_exit_step=r.plateau_exit_step,
        escape_W1=r.escape_w1,
        **{f"W{k + 1}": w for k, w in enumerate(r.final_params)},
    )
    arrays = {"M": pb.m, "M_obs": pb.m_obs}
    if pb.kind == "completion":
        arrays["mask"] = pb.mask
    else:
        arrays.update(A=pb.a, y=pb.y)
    if run.baseline is not None:
        arrays["X_nuclear"] = run.baseline.x
    save_arrays(out / "arrays" / "problem.npz", **arrays)
    s = summary(run)
    write_json(out / "summary.json", s)
    (out / "figures").mkdir()
    plot_matrix_run(run, s, out / "figures")
    return s


def plot_matrix_run(run: MatrixRun, s: dict, fig_dir: Path) -> None:
    r = run.result
    t = r.snapshot_times
    members = s["members"]
    show = range(min(run.ensemble.size, 6))
    labels = [f"seed {m['seed']}, eps {m['scale']:.1e}" for m in members]

    fig, axs = figures.subplots(1, 2, figsize=(10, 3.8))
    for i in show:
        (line,) = axs[0].plot(t, r.series["loss"][i], label=labels[i])
        if members[i]["T_star_effective"] is not None:
            axs[0].axvline(members[i]["T_star_effective"], color=line.get_color(), ls="--", lw=0.8)
        axs[1].plot(t, r.series["test_rmse"][i], color=line.get_color())
    axs[0].set_yscale("log")
    axs[0].set_ylabel("train loss 1/2 |P(X - M)|^2")
    axs[0].set_title("dashed: effective T*", fontsize=9)
    axs[1].set_yscale("log")
    axs[1].set_ylabel("test RMSE (unobserved entries)")
    if s.get("nuclear_norm_baseline"):
        axs[1].axhline(s["nuclear_norm_baseline"]["test_rmse"], color="k", ls=":", lw=1)
        axs[1].set_title("dotted: min nuclear norm", fontsize=9)
    for a in axs:
        a.set_xlabel("time t = step x lr")
    axs[0].legend(fontsize=7)
    figures.save(fig, fig_dir / "loss.png")

    fig, axs = figures.subplots(1, 2, figsize=(10, 3.8))
    k = min(N_REPORT, r.tracked_singular_values.shape[2])
    tr = np.abs(r.tracked_singular_values[0, :, :k])
    for j in range(k):
        axs[0].plot(t, np.maximum(tr[:, j], 1e-300), label=f"sigma_{j + 1}")
    axs[0].set_yscale("log")
    axs[0].set_ylabel("|u_k(T)^T X(t) v_k(T)|")
    axs[0].set_title(f"singular values in identity ({labels[0]})", fontsize=9)
    axs[0].legend(fontsize=6, ncol=2)
    for i in show:
        axs[1].plot(t, r.series["effective_rank"][i], label=labels[i])
    axs[1].axhline(mx.PLATEAU_RANK, color="k", ls=":", lw=0.8)
    axs[1].set_yscale("log")
    axs[1].set_ylabel("effective rank exp H(sigma/sum sigma)")
    for a in axs:
        a.set_xlabel("time t = step x lr")
    figures.save(fig, fig_dir / "singular_values.png")

    fig, ax = figures.subplots(figsize=(5, 3.5))
    for i in show:
        ax.plot(t, r.series["median_abs_cos_v1"][i], label=labels[i])
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("time t = step x lr")
    ax.set_ylabel("median |cos(row of W1, v1)|")
    ax.legend(fontsize=7)
    figures.save(fig, fig_dir / "alignment.png")


# ---- the matrix-completion experiment ------------------------------------------------
EXPERIMENT_DEFAULTS: dict[str, Any] = {
    "n": 20,
    "rank": 2,
    "spectrum": "gaussian",
    "problem_seeds": [0, 1, 2],  # sweep: median over problem seeds x init seeds
    "observed": [80, 100, 120, 142, 170, 200, 250],
    "trajectory_problem_seed": 4,  # the problem of configs/matrix_completion.toml
    "trajectory_observed": 142,
    "trajectory_snapshots": [40, 240],  # log-spaced, equally spaced
    "depths": [1, 2, 3, 4],
    "seeds": [0],
    # init scale per depth (depth 4 at 1e-3 would escape only after t ~ 1e4)
    "eps": [1e-3, 1e-3, 1e-3, 1e-2],
    "lr": [0.2, 0.01, 0.003, 0.003],
    "time": [100.0, 100.0, 250.0, 250.0],  # GD time t = steps x lr per depth
    "t_star": True,
}
EXPERIMENT_QUICK: dict[str, Any] = {
    "observed": [120, 200],
    "problem_seeds": [0],
    "trajectory_snapshots": [20, 100],
    "time": [30.0, 50.0, 120.0, 80.0],
    "lr": [0.2, 0.01, 0.004, 0.004],
    "t_star": False,
}


def _depth_cfg(
    params: dict, depth: int, observed: int, problem_seed: int, snapshots: tuple[int, int]
):
    j = params["depths"].index(depth)
    lr = float(params["lr"][j])
    steps = max(1, int(round(float(params["time"][j]) / lr)))
    return mx.matrix_config_from_dict(
        {
            "problem": {
                "n": params["n"],
                "rank": params["rank"],
                "spectrum": params["spectrum"],
                "observed": observed,
                "seed": problem_seed,
            },
            "model": {"depth": depth},
            "init": {"scale": float(params["eps"][j]), "seeds": list(params["seeds"])},
            "train": {
                "lr": lr,
                "steps": steps,
                "snapshots": snapshots[0],
                "linear_snapshots": snapshots[1],
            },
        }
    )


def run_experiment(
    params: dict[str, Any], out_dir: Path, progress: Callable[[str, int, int], None] | None = None
) -> dict[str, float | int | bool | None]:
    """Test error and effective rank vs depth and observations; trajectories; baseline.

    ``params``: :data:`EXPERIMENT_DEFAULTS` (``EXPERIMENT_QUICK`` overrides for a
    quick run).  Writes ``arrays/matrix_sweep.npz``, ``arrays/matrix_trajectory.npz``
    and ``figures/matrix_{sweep,trajectory}.png`` under ``out_dir`` and returns
    headline numbers (median over seeds): ``test_rmse_depth{L}_obs{n}``,
    ``effective_rank_depth{L}_obs{n}``, ``nuclear_test_rmse_obs{n}`` and, for the
    trajectory (depth 3 at ``trajectory_observed``), the rank-one plateau, the
    escape time and the effective ``T*``.
    """
    out_dir = Path(out_dir)
    (out_dir / "arrays").mkdir(parents=True, exist_ok=True)
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    depths, observed = list(params["depths"]), list(params["observed"])
    problem_seeds = list(params["problem_seeds"])
    n_members = len(problem_seeds) * len(params["seeds"])
    rmse = np.full((len(depths), len(observed), n_members), np.nan)
    erank = np.full_like(rmse, np.nan)
    nuc_rmse = np.full((len(observed), len(problem_seeds)), np.nan)
    nuc_erank = np.full_like(nuc_rmse, np.nan)
    head: dict[str, float | int | bool | None] = {}
    total = len(depths) * len(observed) * len(problem_seeds)
    done = 0
    for jo, n_obs in enumerate(observed):
        for jp, pseed in enumerate(problem_seeds):
            problem = None
            members = slice(jp * len(params["seeds"]), (jp + 1) * len(params["seeds"]))
            for jd, depth in enumerate(depths):
                cfg = _depth_cfg(params, depth, n_obs, pseed, (20, 20))
                if problem is None:
                    problem = mx.load_problem(cfg.problem)
                run = run_matrix(cfg, problem=problem, t_star=False, baseline=False)
                rmse[jd, jo, members] = run.result.series["test_rmse"][:, -1]
                erank[jd, jo, members] = run.result.series["effective_rank"][:, -1]
                done += 1
                if progress is not None:
                    progress("matrix sweep (depth x observations x problems)", done, total)
            base = mx.matrix_errors(problem, mx.min_nuclear_norm(problem).x)
            nuc_rmse[jo, jp], nuc_erank[jo, jp] = base["test_rmse"], base["effective_rank"]
    for jd, depth in enumerate(depths):
        for jo, n_obs in enumerate(observed):
            head[f"test_rmse_depth{depth}_obs{n_obs}"] = float(np.median(rmse[jd, jo]))
            head[f"effective_rank_depth{depth}_obs{n_obs}"] = float(np.median(erank[jd, jo]))
    for jo, n_obs in enumerate(observed):
        head[f"nuclear_test_rmse_obs{n_obs}"] = float(np.median(nuc_rmse[jo]))
    save_arrays(
        out_dir / "arrays" / "matrix_sweep.npz",
        depths=np.asarray(depths),
        observed=np.asarray(observed),
        problem_seeds=np.asarray(problem_seeds),
        init_seeds=np.asarray(params["seeds"]),
        test_rmse=rmse,  # (depth, observed, problem seed x init seed)
        effective_rank=erank,
        nuclear_test_rmse=nuc_rmse,
        nuclear_effective_rank=nuc_erank,
    )
    _plot_sweep(depths, observed, rmse, erank, nuc_rmse, nuc_erank, out_dir / "figures")

    # trajectories: depth 2 and depth 3 at trajectory_observed, first seed
    traj = {}
    for depth in (2, 3):
        if depth not in depths:
            continue
        cfg = _depth_cfg(
            params,
            depth,
            int(params["trajectory_observed"]),
            int(params["trajectory_problem_seed"]),
            tuple(params["trajectory_snapshots"]),
        )
        cfg = dataclasses.replace(
            cfg, init=dataclasses.replace(cfg.init, seeds=(params["seeds"][0],))
        )
        traj[depth] = run_matrix(cfg, t_star=bool(params["t_star"]), baseline=depth == 3)
        if progress is not None:
            progress("matrix trajectories", len(traj), 2)
    if 3 in traj:
        m3 = member_summaries(traj[3])[0]
        plateau = m3["rank_one_plateau"]
        head["trajectory_depth3_test_rmse"] = float(m3["test_rmse"])
        head["trajectory_depth3_escape_time"] = m3["escape_time"]
        head["trajectory_depth3_T_star"] = m3["T_star_effective"]
        head["trajectory_depth3_escape_over_T_star"] = m3["escape_over_T_star"]
        head["trajectory_depth3_plateau_start"] = plateau[0] if plateau else None
        head["trajectory_depth3_plateau_end"] = plateau[1] if plateau else None
        base = traj[3].baseline
        head["trajectory_nuclear_test_rmse"] = (
            mx.matrix_errors(traj[3].problem, base.x)["test_rmse"] if base is not None else None
        )
    if 2 in traj:
        head["trajectory_depth2_test_rmse"] = float(traj[2].result.series["test_rmse"][0, -1])
    arrays = {}
    for depth, run in traj.items():
        r = run.result
        arrays[f"depth{depth}_times"] = r.snapshot_times
        arrays[f"depth{depth}_tracked_singular_values"] = r.tracked_singular_values[0]
        arrays[f"depth{depth}_effective_rank"] = r.series["effective_rank"][0]
        arrays[f"depth{depth}_loss"] = r.series["loss"][0]
        arrays[f"depth{depth}_test_rmse"] = r.series["test_rmse"][0]
    save_arrays(out_dir / "arrays" / "matrix_trajectory.npz", **arrays)
    _plot_trajectory(traj, out_dir / "figures")
    return head


def _plot_sweep(depths, observed, rmse, erank, nuc_rmse, nuc_erank, fig_dir: Path) -> None:
    fig, axs = figures.subplots(1, 2, figsize=(10, 3.8))
    for jd, depth in enumerate(depths):
        axs[0].plot(observed, np.median(rmse[jd], axis=1), "o-", label=f"depth {depth}")
        axs[1].plot(observed, np.median(erank[jd], axis=1), "o-", label=f"depth {depth}")
    axs[0].plot(observed, np.median(nuc_rmse, axis=1), "k^--", label="min nuclear norm")
    axs[1].plot(observed, np.median(nuc_erank, axis=1), "k^--", label="min nuclear norm")
    axs[0].set_yscale("log")
    axs[0].set_ylabel("test RMSE (median over problems x seeds)")
    axs[1].set_ylabel("effective rank of X")
    for a in axs:
        a.set_xlabel("observed entries")
    axs[0].legend(fontsize=7)
    figures.save(fig, fig_dir / "matrix_sweep.png")


def _plot_trajectory(traj: dict, fig_dir: Path) -> None:
    fig, axs = figures.subplots(1, max(len(traj), 1), figsize=(5 * max(len(traj), 1), 3.8))
    axs = np.atleast_1d(axs)
    for ax, (depth, run) in zip(axs, sorted(traj.items())):
        r = run.result
        t = r.snapshot_times
        tr = np.abs(r.tracked_singular_values[0, :, :4])
        for j in range(tr.shape[1]):
            ax.plot(t, np.maximum(tr[:, j], 1e-300), label=f"sigma_{j + 1}")
        if run.blowups is not None and run.blowups[0].blew_up:
            ax.axvline(run.blowups[0].T_star, color="k", ls="--", lw=0.8, label="effective T*")
        ax.set_yscale("log")
        ax.set_xlabel("time t = step x lr")
        ax.set_title(f"depth {depth}: singular values in identity", fontsize=9)
        ax2 = ax.twinx()
        ax2.plot(t, r.series["effective_rank"][0], color="0.5", lw=0.8)
        ax2.set_ylabel("effective rank (grey)")
        ax.legend(fontsize=7, loc="lower right")
    figures.save(fig, fig_dir / "matrix_trajectory.png")
