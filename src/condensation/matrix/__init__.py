"""Deep matrix factorisation and completion: condensation as low-rank bias (THEORY §6).

Problems
    ``completion``: a target ``M`` (n1, n2) seen on a 0/1 mask ``Omega``.
    ``sensing``: measurements ``y_i = <A_i, M>`` with sensing matrices ``A_i``.
    Built-in ground truths have rank r and are scaled so that
    ``|M|_F^2 = n1 n2`` (entries have unit mean square):
    ``spectrum = "gaussian"`` (default) is ``M = c G H^T`` with i.i.d. ``N(0, 1)``
    factors ``G`` (n1, r), ``H`` (n2, r) (the usual test matrices of the deep
    factorisation literature; distinct singular values), ``"flat"`` is
    ``M = sqrt(n1 n2 / r) U V^T`` with Haar-random orthonormal ``U``, ``V``
    (every non-zero singular value equal, effective rank exactly r).  Masks observe
    ``observed`` entries drawn uniformly without replacement; sensing matrices
    have i.i.d. ``N(0, 1/k)`` entries (k measurements), so ``E A^*(y) = M``.
    The truth is drawn before the mask/operator from one ``numpy`` generator
    seeded with ``seed``, so sweeping ``observed`` keeps the same ``M``.

Model and training
    ``X = W_L ... W_1`` (orientation and losses: :mod:`condensation.core.matrix`),
    full-batch GD on ``1/2 |P_Omega(X - M)|_F^2`` (a sum, not a mean), time
    ``t = step * lr``, compiled on the training engine (:mod:`condensation.training.engine`: one
    ``while_loop`` in chunks) and vmapped over an ensemble of seeds x init scales,
    like :mod:`condensation.training.network`.

Measurements
    train loss, test RMSE over the unobserved entries (sensing: over all
    entries), relative Frobenius error, sorted singular values, singular
    values tracked in identity (``u_k^T X(t) v_k`` on the final product's
    singular vectors), entropy effective rank, nuclear norm, alignment of the
    rows of ``W1`` with ``v1`` (top right singular vector of ``M_O``), the time
    each tracked singular value first reaches half its final value, the escape
    time (``loss <= loss_0 / 2``, the network trainer's convention), the plateau
    exit time (``loss <= 0.9 loss_0``: with several comparable components the
    first blow-up removes less than half the loss), the effective ``T*`` and the
    final-stage entry time of the triple ``(W3^T u1, W2, W1 v1)`` (depth 3).

Baseline
    minimum-nuclear-norm completion ``min |X|_* s.t. A(X) = y`` by ADMM with
    singular value thresholding (numpy only).
"""

from condensation.config.matrix import (
    ALIGNED,
    KINDS,
    PLATEAU_EXIT,
    PLATEAU_RANK,
    SCHEMES,
    SECTIONS,
    SPECTRA,
    MatrixConfig,
    MatrixInitConfig,
    MatrixModelConfig,
    MatrixTrainConfig,
    ProblemConfig,
    load_matrix_config,
    matrix_config_from_dict,
)
from condensation.matrix.baseline import (
    NuclearResult,
    min_nuclear_norm,
)
from condensation.matrix.problems import (
    Problem,
    effective_rank_np,
    load_problem,
    low_rank_matrix,
    make_problem,
    matrix_errors,
    problem_from_arrays,
)
from condensation.matrix.training import (
    FactorisationResult,
    MatrixEnsemble,
    effective_blowup,
    factor_shapes,
    half_times,
    init_ensemble,
    init_factors,
    longest_stretch_below,
    row_alignment_np,
    top_singular_pair,
    train_factorisation,
)

__all__ = [
    "ALIGNED",
    "FactorisationResult",
    "KINDS",
    "MatrixConfig",
    "MatrixEnsemble",
    "MatrixInitConfig",
    "MatrixModelConfig",
    "MatrixTrainConfig",
    "NuclearResult",
    "PLATEAU_EXIT",
    "PLATEAU_RANK",
    "Problem",
    "ProblemConfig",
    "SCHEMES",
    "SECTIONS",
    "SPECTRA",
    "effective_blowup",
    "effective_rank_np",
    "factor_shapes",
    "half_times",
    "init_ensemble",
    "init_factors",
    "load_matrix_config",
    "load_problem",
    "longest_stretch_below",
    "low_rank_matrix",
    "make_problem",
    "matrix_config_from_dict",
    "matrix_errors",
    "min_nuclear_norm",
    "problem_from_arrays",
    "row_alignment_np",
    "top_singular_pair",
    "train_factorisation",
]
