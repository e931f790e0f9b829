"""``matrix-completion``: depth and the low-rank bias of deep matrix factorisation."""

from __future__ import annotations

from pathlib import Path

from condensation.commands.matrix import EXPERIMENT_DEFAULTS, EXPERIMENT_QUICK, run_experiment
from condensation.experiments import Figure, Progress

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
error on the unobserved entries.
"""

DEFAULTS = dict(EXPERIMENT_DEFAULTS)
QUICK = dict(EXPERIMENT_QUICK)
# data.* keys are refused in one line, saying why
NO_DATA = "completes random low-rank matrices (no data set)"
SECONDS = (8, 185)  # quick: CPU s cold, one device (bench_reproduce 2026-12-05); default: earlier

FIGURES = (
    Figure(
        "figures/matrix_sweep.png",
        "Test RMSE on unobserved entries and effective rank of the product vs number of "
        "observed entries, for depths 1-4 and the minimum nuclear-norm completion.",
        (
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
    return run_experiment(params, out_dir, progress)
