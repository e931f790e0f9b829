"""``matrix-completion``: depth and the low-rank bias of deep matrix factorisation."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from condensation import matrix as mx
from condensation.commands.matrix import run_matrix
from condensation.commands.matrix_summary import member_summaries
from condensation.experiments import Figure, Progress
from condensation.report import figures
from condensation.store.rundir import save_arrays

NAME = "matrix-completion"
TITLE = "Deep matrix completion: depth 3 learns rank-one components one after another"
SECTION = "matrix-completion"
STORY = """
A three-layer network is the one-row case of a deep matrix product X = W3 W2 W1,
and the same blow-up drives the product toward the top singular pair of the
observed matrix: from small initialisation, depth 3 picks up rank-one components
one at a time, with a rank-one plateau in between, and completes a low-rank
matrix from few entries, where depth 2 separates components weakly and the
unfactorised matrix (depth 1) does not generalise at all. The minimum
nuclear-norm completion is shown beside them. 20 x 20 rank-2 matrices; test
error on the unobserved entries. Depth 4 (init 1e-2) is not uniformly better: in
the default sweep, at 142 observed entries it fails on two of the three problems
(test RMSE 4 to 7, where 1 is the error of predicting 0), which makes its median
spike between near-exact completions at 120 and 170 entries. On those two
problems its one-component-at-a-time path stops at a wrong rank-2 point (training
loss about 1, top singular value 70 to 110 against the true matrix's 15 to 17), a
saddle: GD leaves it by growing a third component and converges (training loss
1e-8 by t = 1000) to a rank-3 interpolant of the observed entries far from the
true matrix, a different global minimum. It is not a step budget or step size
artefact: at t = 1000, at lr 1e-3 instead of 3e-3, or from init 3e-3 (which only
stays longer at the rank-2 point) the test error stays as large. Depth 3 also ends
far from the truth on one of the three problems at 142 entries (test RMSE 3.4);
the dots show every problem.
"""

# the parameters (EXPERIMENT_*: their names at their old home, condensation.commands.matrix)
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

DEFAULTS = dict(EXPERIMENT_DEFAULTS)
QUICK = dict(EXPERIMENT_QUICK)
# data.* keys are refused in one line, saying why
NO_DATA = "completes random low-rank matrices (no data set)"
SECONDS = (8, 185)  # quick: CPU s cold, one device (bench_reproduce 2026-12-05); default: earlier

FIGURES = (
    Figure(
        "figures/matrix_sweep.png",
        "Test RMSE on unobserved entries and effective rank of the product vs number of "
        "observed entries, for depths 1-4 and the minimum nuclear-norm completion: lines "
        "are medians over problems x init seeds, dots each problem (shifted a little per "
        "depth). The entries are of order 1, so a test RMSE above 1 is worse than "
        "predicting 0 everywhere: n_test_rmse_above_1_depthL counts those runs. In the "
        "default sweep depth 4 (red) spikes at 142 entries because two of its three "
        "problems fail there; the story says how.",
        (
            "n_sweep_members",
            "n_test_rmse_above_1_depth3",
            "n_test_rmse_above_1_depth4",
            "test_rmse_depth1_obs200",
            "test_rmse_depth2_obs200",
            "test_rmse_depth3_obs200",
            "test_rmse_depth4_obs200",
            "nuclear_test_rmse_obs200",
            "effective_rank_depth3_obs200",
        ),
    ),
    Figure(
        "figures/matrix_trajectory.png",
        "Singular values of the depth-3 product over time at 142 observed entries: a "
        "rank-one plateau, then the second component; the loss leaves its first plateau "
        "at the effective blow-up time T*.",
        (
            "trajectory_depth3_test_rmse",
            "trajectory_depth3_plateau_start",
            "trajectory_depth3_plateau_end",
            "trajectory_depth3_escape_time",
            "trajectory_depth3_T_star",
            "trajectory_depth3_escape_over_T_star",
            "trajectory_depth2_test_rmse",
            "trajectory_nuclear_test_rmse",
        ),
    ),
)


def run(params: dict, out_dir: Path, progress: Progress) -> dict:
    """The registered experiment's body (:func:`run_experiment`).

    Args:
        params: :data:`DEFAULTS`, with :data:`QUICK` over them for a quick run.
        out_dir: the existing directory to write into.
        progress: ``(description, done, total)`` per finished unit.

    Returns:
        The headline numbers.
    """
    return run_experiment(params, out_dir, progress)


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

    Writes ``arrays/matrix_sweep.npz``, ``arrays/matrix_trajectory.npz``
    and ``figures/matrix_{sweep,trajectory}.png`` under ``out_dir`` and returns
    headline numbers (median over seeds): ``test_rmse_depth{L}_obs{n}``,
    ``effective_rank_depth{L}_obs{n}``, ``nuclear_test_rmse_obs{n}`` and, for the
    trajectory (depth 3 at ``trajectory_observed``), the rank-one plateau, the
    escape time and the effective ``T*``.

    Args:
        params: :data:`EXPERIMENT_DEFAULTS` (``EXPERIMENT_QUICK`` over them for a
            quick run).
        out_dir: the directory to write into (made if missing).
        progress: ``(description, done, total)`` per finished unit.

    Returns:
        The headline numbers.
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
    head["n_sweep_members"] = int(rmse.shape[1] * rmse.shape[2])  # observed counts x members
    for jd, depth in enumerate(depths):  # failures: worse than about predicting 0 everywhere
        head[f"n_test_rmse_above_1_depth{depth}"] = int(np.sum(rmse[jd] > 1.0))
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
    plot_sweep(depths, observed, rmse, erank, nuc_rmse, nuc_erank, out_dir / "figures")

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


def plot_sweep(depths, observed, rmse, erank, nuc_rmse, nuc_erank, fig_dir: Path) -> None:
    """Test RMSE and effective rank vs observed entries: per depth the median (line)
    and every member (small markers, shifted a little per depth), the nuclear-norm
    baseline; one legend in a third column."""
    fig, axs = figures.subplots(
        1, 3, figsize=(figures.FIG_WIDTH, 4.2), gridspec_kw={"width_ratios": [1, 1, 0.42]}
    )
    obs = np.asarray(observed, float)
    step = 0.012 * (obs.max() - obs.min() if obs.size > 1 else 1.0)
    for jd, depth in enumerate(depths):
        x = obs + (jd - (len(depths) - 1) / 2) * step
        for ax, v in ((axs[0], rmse[jd]), (axs[1], erank[jd])):
            ax.plot(x, np.median(v, axis=1), "o-", color=f"C{jd}", label=f"depth {depth}")
            if v.shape[1] > 1:
                ax.plot(np.repeat(x, v.shape[1]), np.ravel(v), ".", color=f"C{jd}", alpha=0.6,
                        ms=5)  # fmt: skip
    for ax, v in ((axs[0], nuc_rmse), (axs[1], nuc_erank)):
        ax.plot(obs, np.median(v, axis=1), "k^--", label="min nuclear norm")
    axs[0].set_yscale("log")
    axs[0].set_ylabel("test RMSE (line: median;\ndots: each problem x seed)")
    axs[1].set_ylabel("effective rank of X")
    for a in axs[:2]:
        a.set_xlabel("observed entries")
    axs[2].axis("off")
    handles, names = axs[0].get_legend_handles_labels()
    axs[2].legend(handles, names, loc="center left", frameon=False)
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
