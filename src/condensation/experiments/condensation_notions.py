"""``condensation-notions``: on the same effective trajectories, when is each notion
of condensation first reached before T*, which comes first, which can fail?

Trajectories: i.i.d. N(0, 1) three-layer states (width ``m``, ``|z| = 1``; the
dynamics is homogeneous, so scale does not matter), solved by the reduced form
through the blow-up in fixed-size batches, then sampled at
``t = T* (1 - q)`` for ``q`` log-spaced from 1 (t = 0) to ``q_min``.  Notions, each
taken at the first sample where it holds (``lead`` = ``q`` there):

- ``pointwise``: every ``|c_j| > 1e3 max_j |c_j(0)|`` (pointwise divergence, THEORY §5);
- ``min_cos``: ``min_j |cos(b_j, z)| > 0.99``;
- ``rank``: effective rank of ``B`` (exp of the entropy of its normalised singular
  values) below 1.1;
- ``one_cluster``: one orientation cluster holds 90 % of the first-layer neurons
  (:func:`condensation.core.metrics.count_clusters`);
- ``sigma_ratio``: ``sigma2/sigma1(W) < 0.01``.

"Lost" counts trajectories where a notion holds at some sample and fails at a later
one.  Samples are discrete: an order between two notions reached between the same
two samples is a tie (both count as first).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from condensation.core.metrics import abs_cos_to, count_clusters, sigma_ratio
from condensation.effective.system import trajectory
from condensation.errors import InputError
from condensation.experiments import Figure, Progress, require_counts
from condensation.experiments._batch import solve_chunked, standard_normal_systems
from condensation.matrix.problems import effective_rank_np
from condensation.report import figures
from condensation.store.rundir import save_arrays

NAME = "condensation-notions"
TITLE = "Notions of condensation: which is reached first before T*, which can fail"
SECTION = "open-questions"
STORY = """
Condensation can be defined in several ways: every |c_j| = |<b_j, z>| diverging
(the paper's pointwise notion), every first-layer weight within a small angle of
+-z, the first layer having effective rank about one, all its neurons in one
orientation cluster, or the middle layer W being rank one (sigma2/sigma1 small).
On the same effective three-layer trajectories, sampled ever closer to the
blow-up time T*, this records when each notion is first reached (as the remaining
fraction (T* - t)/T*), which comes first, and whether any is reached and then
lost. It is evidence on the trajectories drawn (random equal-scale initial
conditions), not a proof of an ordering.
"""

DEFAULTS = {"n_trajectories": 64, "width": 6, "d": 4, "seed": 1, "n_samples": 33,
            "q_min": 1e-8}  # fmt: skip
QUICK = {"n_trajectories": 8}
# data.* keys are refused in one line, saying why
NO_DATA = "draws its effective states with |z| = 1 (no data set)"
SECONDS = (8, 12)  # quick: CPU s cold, one device (bench_reproduce 2026-12-05); default: earlier

NOTIONS = ("pointwise", "min_cos", "rank", "one_cluster", "sigma_ratio")

FIGURES = (
    Figure(
        "figures/notions.png",
        "Left: per notion, the remaining fraction (T* - t)/T* at which it is first "
        "reached (one dot per trajectory; higher = earlier). Right: how often each "
        "notion is (one of) the first reached, is never reached, or is lost again.",
        tuple(f"{k}_{s}" for k in NOTIONS for s in ("n_reached", "median_log10_lead")),
    ),
)


def notions_at(b, w, z, c0_max: float) -> dict[str, bool]:
    """Which notions hold at one state (B (m1, d), W (m2, m1))."""
    c = b @ z
    s = np.linalg.svd(b, compute_uv=False)
    return {
        "pointwise": bool(np.min(np.abs(c)) > 1e3 * c0_max),
        "min_cos": bool(np.min(abs_cos_to(b, z)) > 0.99),
        "rank": bool(effective_rank_np(s) < 1.1),
        "one_cluster": count_clusters(b) == 1,
        "sigma_ratio": sigma_ratio(w) < 0.01,
    }


def _check(p: dict) -> None:
    require_counts(p, ("n_trajectories", "width", "d"))
    if p["n_samples"] < 2:
        raise InputError("n_samples", p["n_samples"], "must be >= 2", "use n_samples >= 2")
    if not 0 < p["q_min"] < 1:
        raise InputError("q_min", p["q_min"], "must be in (0, 1)", "e.g. 1e-8")


def run(params: dict, out_dir: Path, progress: Progress) -> dict:
    p = params
    _check(p)
    rng = np.random.default_rng(p["seed"])
    m, d = p["width"], p["d"]
    systems, z = standard_normal_systems(rng, p["n_trajectories"], m, d)
    sols = solve_chunked(systems)
    q = np.geomspace(1.0, p["q_min"], p["n_samples"])
    n = len(sols)
    lead = {k: np.full(n, np.nan) for k in NOTIONS}
    lost = {k: np.zeros(n, dtype=bool) for k in NOTIONS}
    for i, (sys_i, sol) in enumerate(zip(systems, sols)):
        progress("sampling trajectories", i, n)
        if not sol.blew_up:
            continue
        _, (b, w, _) = trajectory(sys_i, sol, sol.T_star * (1.0 - q))
        c0_max = float(np.max(np.abs(b[0] @ z)))
        held = {k: np.zeros(q.size, dtype=bool) for k in NOTIONS}
        for j in range(q.size):
            for k, v in notions_at(b[j], w[j], z, c0_max).items():
                held[k][j] = v
        for k in NOTIONS:
            idx = np.nonzero(held[k])[0]
            if idx.size:
                lead[k][i] = q[idx[0]]
                lost[k][i] = not np.all(held[k][idx[0]:])
    progress("sampling trajectories", n, n)
    blew = np.array([s.blew_up for s in sols])
    leads = np.stack([lead[k] for k in NOTIONS])  # (notions, n); larger q = earlier
    best = np.nanmax(np.where(np.isfinite(leads), leads, -np.inf), axis=0)
    first = np.isfinite(leads) & (leads == best[None, :])
    head: dict = {"n_trajectories": n, "n_blow_up": int(blew.sum())}
    for a, k in enumerate(NOTIONS):
        ok = np.isfinite(lead[k])
        head[f"{k}_n_reached"] = int(ok.sum())
        head[f"{k}_n_not_reached"] = int((blew & ~ok).sum())
        head[f"{k}_n_first"] = int(first[a].sum())
        head[f"{k}_n_lost"] = int(lost[k].sum())
        med = float(np.median(np.log10(lead[k][ok]))) if ok.any() else None
        head[f"{k}_median_log10_lead"] = med
    save_arrays(out_dir / "arrays" / "notions.npz", q=q, notions=np.array(NOTIONS), lead=leads,
                first=first, lost=np.stack([lost[k] for k in NOTIONS]), blew_up=blew)  # fmt: skip
    _plot(out_dir / "figures" / "notions.png", leads, head)
    return head


def _plot(path, leads, head) -> None:
    fig, axs = figures.subplots(1, 2, figsize=(11, 3.8))
    x = np.arange(len(NOTIONS))
    for a in range(len(NOTIONS)):
        v = leads[a][np.isfinite(leads[a])]
        jitter = 0.15 * (np.linspace(-1, 1, v.size) if v.size > 1 else np.zeros(v.size))
        axs[0].plot(a + jitter, np.log10(v), ".", color=f"C{a}", ms=4)
    axs[0].set_xticks(x, NOTIONS, fontsize=8)
    axs[0].set_ylabel("log10 (T* - t_first)/T*")
    for off, key, label in ((-0.27, "n_first", "first"), (0.0, "n_not_reached", "never"),
                            (0.27, "n_lost", "lost")):  # fmt: skip
        vals = [head[f"{k}_{key}"] for k in NOTIONS]
        axs[1].bar(x + off, vals, 0.27, label=label)
    axs[1].set_xticks(x, NOTIONS, fontsize=8)
    axs[1].legend(fontsize=7)
    figures.save(fig, path)
