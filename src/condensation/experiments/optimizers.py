"""``optimizers``: does the plateau survive SGD noise, momentum and Adam?

The three-layer tanh network on teacher data (``data.*`` for another set), trained
from the same initial parameters by gd, sgd at batch sizes n / f for each f in
``batch_fractions``,
heavy-ball momentum and Adam.  For each optimizer and each eps in
``[eps_min, eps_max]``: the escape time (first step with the full-batch loss
halved, times lr), a log-log fit of escape time vs eps (slope -1 is the 1/eps
law of THEORY §3), and the median ``|cos(b_j, z)|`` of the first-layer rows at
the escape step (the plateau's exit).

Sizes are chosen so the default fits in about 20 s on 2 cores: width 20, n = 64
(so n/16 = 4 divides n and no sample is left out of an epoch), lr 0.5 for gd,
sgd and momentum (on the plateau the Hessian is O(eps), so large steps follow
the flow closely; gd's slope is within 1 % of -1 at this lr).  Adam runs at its
usual lr 1e-3, since at lr 0.5 its first steps alone (each weight moves by about
lr per step) would erase the small initialisation.

Each eps is its own call of the trainer (same shapes: one compilation per
optimizer), with a step budget from the previous, larger eps by the 1/eps law
(times ``margin``), retried with 4x the steps if the member has not escaped.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from condensation.commands.train import prepare
from condensation.config.network import config_from_dict
from condensation.core.metrics import abs_cos_to
from condensation.errors import InputError
from condensation.experiments import (
    Figure,
    Progress,
    data_section,
    require_eps_range,
    require_positive,
)
from condensation.report import figures
from condensation.store.rundir import save_arrays
from condensation.training.network import TrainResult, snapshot_steps, train
from condensation.training.optimizers import Optimizer

NAME = "optimizers"
TITLE = "Beyond gradient descent: the plateau under SGD, momentum and Adam"
SECTION = "optimizers"
STORY = """
The effective dynamics is derived for gradient flow, and full-batch GD at small
lr follows it. Here the same three-layer network, from the same initial
weights, is trained by GD, by mini-batch SGD at several batch sizes, by
heavy-ball momentum and by Adam, for init scales eps from 1e-4 to 1e-2; the
loss is always measured on the full batch. SGD's mini-batch gradients are
unbiased, so at small lr their noise averages out: its escape times should match
GD's at every batch size, and its slope should stay near -1 (the 1/eps law).
Momentum rescales time by about 1/(1 - beta) but keeps the law. Adam divides each
gradient by its own size, so nothing is slow about a small gradient: the plateau
and the 1/eps law need not survive, and the effective prediction is not a theorem
for it (nor for momentum).
"""

DEFAULTS = {
    "eps_min": 1e-4,
    "eps_max": 1e-2,
    "n_eps": 5,
    "width": 20,  # both hidden layers
    "n": 64,
    "data_seed": 0,
    "seed": 0,
    "lr": 0.5,  # gd, sgd, momentum
    "adam_lr": 1e-3,
    "momentum": 0.9,
    "batch_fractions": [1, 4, 16],  # sgd batch sizes n / f
    "optimizers": ["gd", "sgd", "momentum", "adam"],
    "loss_curve_eps": 1e-3,  # the member whose loss curves are drawn (nearest eps)
    "margin": 1.3,
}


def DATA_DEFAULT(p: dict) -> dict:  # noqa: N802 (the protocol's name)
    """The teacher set of ``n`` points drawn from ``data_seed``; data.* overrides it
    (the batch sizes are then fractions of that data set's own n)."""
    return {"dataset": "teacher", "seed": p["data_seed"], "n": p["n"]}


QUICK = {"eps_min": 3e-3, "n_eps": 2, "optimizers": ["gd", "sgd", "adam"], "batch_fractions": [4]}
SECONDS = (7, 24)  # quick: CPU s cold, one device (bench_reproduce 2026-12-05); default: earlier

_DEFAULT_LABELS = ("gd", "sgd_b64", "sgd_b16", "sgd_b4", "momentum", "adam")
FIGURES = (
    Figure(
        "figures/escape_vs_eps.png",
        "Left: escape time (full-batch loss halved) vs eps, log-log, one line and marker "
        "per optimizer with its fitted slope (grey dashes: slope -1, the 1/eps law of "
        "gradient flow; for momentum and adam it is not a theorem). Right: median "
        "|cos(b_j, z)| of the first-layer rows at the escape, per optimizer and eps. Each "
        "optimizer's points are shifted sideways by a few percent so that equal values "
        "stay visible (sgd at batch n is gd, and sgd at small lr follows it closely).",
        tuple(f"{k}_slope" for k in _DEFAULT_LABELS)
        + tuple(f"{k}_median_abs_cos_at_escape" for k in _DEFAULT_LABELS)
        + ("sgd_max_rel_diff_to_gd",),
    ),
    Figure(
        "figures/loss_curves.png",
        "Full-batch loss vs step (log axes) at eps nearest loss_curve_eps, one panel per "
        "optimizer, every one from the same initial weights; gd's curve is dashed in every "
        "other panel for comparison, and a dotted line marks each escape. The x axis is the "
        "step, not t = step x lr, because adam runs at lr 1e-3 and the others at lr 0.5: "
        "adam leaves its plateau after far fewer steps than the others.",
        ("loss_curve_eps", "lr", "adam_lr", "width", "n"),
    ),
)


def _check(p: dict, n: int | None = None) -> None:
    """The parameters; the batch fractions against the data's ``n`` (default ``p["n"]``)."""
    n = p["n"] if n is None else n
    require_eps_range(p)
    require_positive(p, ("lr", "adam_lr", "margin", "width", "n"))
    if not 0 <= p["momentum"] < 1:
        raise InputError("momentum", p["momentum"], "must be in [0, 1)", "use e.g. momentum=0.9")
    bad = [o for o in p["optimizers"] if o not in ("gd", "sgd", "momentum", "adam")]
    if bad or "gd" not in p["optimizers"]:
        raise InputError(
            "optimizers",
            p["optimizers"],
            "must include gd, others from sgd, momentum, adam",
            'use e.g. optimizers=["gd", "sgd", "adam"]',
        )
    for f in p["batch_fractions"]:
        if not 1 <= f <= n:
            raise InputError(
                "batch_fractions",
                p["batch_fractions"],
                f"each in [1, n = {n}]",
                "use e.g. batch_fractions=[1, 4, 16]",
            )


def contenders(p: dict, n: int | None = None) -> list[tuple[str, Optimizer, float]]:
    """(label, optimizer, lr) for each run, gd first; sgd batches are ``n // f`` of the
    data's ``n`` (default ``p["n"]``, the teacher set's)."""
    n = p["n"] if n is None else n
    out = []
    for name in p["optimizers"]:
        if name == "gd":
            out.append(("gd", Optimizer("gd"), p["lr"]))
        elif name == "sgd":
            for f in p["batch_fractions"]:
                b = max(1, n // f)
                out.append((f"sgd_b{b}", Optimizer("sgd", batch_size=b), p["lr"]))
        elif name == "momentum":
            out.append(("momentum", Optimizer("momentum", momentum=p["momentum"]), p["lr"]))
        else:
            out.append(("adam", Optimizer("adam"), p["adam_lr"]))
    return out


def _train_escaping(params, data, spec, opt, lr, guess, snaps, report) -> TrainResult:
    """Train one member for ``guess`` steps; 4x more (up to 5 times) until it escapes."""
    steps = max(math.ceil(guess), 20)
    for _ in range(6):
        r = train(
            params,
            data.x,
            data.y,
            act=spec.activation.fn,
            lr=lr,
            steps=steps,
            snapshots=snapshot_steps(steps, 40, 20) if snaps else np.array([0, steps]),
            track_final_stage=False,
            optimizer=opt,
            progress=report,
        )
        if r.escape_step[0] >= 0 or r.diverged_step[0] >= 0:
            return r
        steps *= 4
    return r


def run(params: dict, out_dir: Path, progress: Progress) -> dict:
    p = params
    _check(p)
    eps = np.geomspace(p["eps_min"], p["eps_max"], p["n_eps"])
    cfg = config_from_dict(
        {
            "data": data_section(p, DATA_DEFAULT(p)),
            "model": {"depth": 3, "widths": [p["width"]] * 2},
            "init": {"scales": [float(e) for e in eps], "seed": p["seed"]},
        }
    )
    data, spec, ens = prepare(cfg)
    n = int(data.x.shape[0])  # p["n"] for the default teacher set
    _check(p, n)
    z = data.z
    curve_i = int(np.argmin(np.abs(np.log(eps) - math.log(p["loss_curve_eps"]))))
    runs = contenders(p, n)
    t_esc = np.full((len(runs), eps.size), np.nan)
    cos_esc = np.full((len(runs), eps.size), np.nan)
    diverged = np.zeros((len(runs), eps.size), bool)
    curves: dict[str, TrainResult] = {}
    for j, (label, opt, lr) in enumerate(runs):
        prev = None  # (escape step, eps) of the last escaped member
        for i in range(eps.size - 1, -1, -1):  # largest eps first: it sets the budget
            guess = (
                min(p["margin"] / eps[i] / lr, 1000.0)  # the gd law (C about 1), capped
                if prev is None
                else p["margin"] * prev[0] * prev[1] / eps[i]  # the 1/eps law from the last
            )
            r = _train_escaping(
                [w[i : i + 1] for w in ens.params],
                data,
                spec,
                opt,
                lr,
                guess,
                i == curve_i,
                lambda d, lab=label, e=eps[i]: progress(f"{lab}: eps {e:.1e}", d, d),
            )
            diverged[j, i] = r.diverged_step[0] >= 0
            if r.escape_step[0] >= 0:
                t_esc[j, i] = r.escape_time[0]
                cos_esc[j, i] = float(np.median(abs_cos_to(r.escape_params[0][0], z)))
                prev = (max(int(r.escape_step[0]), 1), eps[i])
            if i == curve_i:
                curves[label] = r
    slopes = {}
    for j, (label, _, _) in enumerate(runs):
        ok = np.isfinite(t_esc[j])
        slopes[label] = (
            float(np.polyfit(np.log(eps[ok]), np.log(t_esc[j][ok]), 1)[0])
            if ok.sum() >= 2
            else float("nan")
        )
    labels = [lab for lab, _, _ in runs]
    gd_t = t_esc[0]
    rel = {
        lab: float(np.nanmax(np.abs(t_esc[j] / gd_t - 1.0)))
        for j, lab in enumerate(labels)
        if lab.startswith("sgd")
    }

    save_arrays(
        out_dir / "arrays" / "escape.npz",
        eps=eps,
        labels=np.array(labels),
        escape_time=t_esc,
        median_abs_cos_at_escape=cos_esc,
        diverged=diverged,
        slopes=np.array([slopes[lab] for lab in labels]),
    )
    save_arrays(
        out_dir / "arrays" / "loss_curves.npz",
        **{f"{lab}_times": r.snapshot_times for lab, r in curves.items()},
        **{f"{lab}_loss": r.snapshot_loss[0] for lab, r in curves.items()},
    )
    plot_escape(out_dir / "figures" / "escape_vs_eps.png", eps, labels, t_esc, cos_esc, slopes)
    lrs = {lab: lr for lab, _, lr in runs}
    plot_losses(out_dir / "figures" / "loss_curves.png", curves, eps[curve_i], lrs)

    head: dict = {
        "eps_min": p["eps_min"],
        "eps_max": p["eps_max"],
        "n_eps": p["n_eps"],
        "lr": p["lr"],
        "adam_lr": p["adam_lr"],
        "width": p["width"],
        "n": n,
        "loss_curve_eps": float(eps[curve_i]),
        "z_norm": float(np.linalg.norm(z)),
    }
    for j, lab in enumerate(labels):
        head[f"{lab}_slope"] = slopes[lab]
        head[f"{lab}_escape_time_at_eps_min"] = float(t_esc[j, 0])
        head[f"{lab}_median_abs_cos_at_escape"] = float(np.nanmedian(cos_esc[j]))
        head[f"{lab}_min_median_abs_cos_at_escape"] = float(np.nanmin(cos_esc[j]))
        head[f"{lab}_n_not_escaped"] = int(np.isnan(t_esc[j]).sum())
        head[f"{lab}_n_diverged"] = int(diverged[j].sum())
        if lab in rel:
            head[f"{lab}_max_rel_diff_to_gd"] = rel[lab]
    sgd_slopes = [slopes[lab] for lab in labels if lab.startswith("sgd")]
    if sgd_slopes:
        head["sgd_slopes"] = float(np.mean(sgd_slopes))  # mean over batch sizes
        head["sgd_max_rel_diff_to_gd"] = max(rel.values())
    for name in ("momentum", "adam"):  # labelled: the 1/eps prediction is not a theorem
        if name in labels:
            head[f"{name}_effective_is_theorem"] = False
    return head


MARKERS = ("o", "s", "^", "v", "D", "P", "X", "<", ">")


def _dodge(eps, j: int, n: int) -> np.ndarray:
    """``eps`` shifted sideways by a few percent per series (``j`` of ``n``), so that
    series with equal values (sgd at full batch is gd) stay side by side, visible."""
    return np.asarray(eps) * 10.0 ** (0.03 * (j - (n - 1) / 2))


def plot_escape(path, eps, labels, t_esc, cos_esc, slopes) -> None:
    """Escape time and |cos| at the escape vs eps, one marker per optimizer, and
    one legend for both panels (in a third column, covering no data)."""
    fig, axs = figures.subplots(
        1, 3, figsize=(figures.FIG_WIDTH, 4.2), gridspec_kw={"width_ratios": [1, 1, 0.5]}
    )
    n = len(labels)
    for j, lab in enumerate(labels):
        style = dict(marker=MARKERS[j % len(MARKERS)], color=f"C{j}", mfc="none", ms=7, lw=1)
        x = _dodge(eps, j, n)
        axs[0].loglog(x, t_esc[j], label=f"{lab}: slope {slopes[lab]:.2f}", **style)
        axs[1].semilogx(x, cos_esc[j], **style)
    ok = np.isfinite(t_esc[0])
    if ok.sum() >= 1:
        gm_e, gm_t = np.exp(np.mean(np.log(eps[ok]))), np.exp(np.mean(np.log(t_esc[0][ok])))
        axs[0].loglog(eps, gm_t * gm_e / eps, "--", color="0.5", lw=0.8, label="slope -1 (gd law)")
    axs[0].set_ylabel("escape time t = step x lr")
    axs[0].set_title("escape vs eps")
    axs[1].set_ylim(0, 1.02)
    axs[1].set_ylabel("median |cos(b_j, z)| at escape")
    axs[1].set_title("first-layer alignment at the escape")
    for ax in axs[:2]:
        ax.set_xlabel("init scale eps (shifted a little per optimizer)")
        figures.value_ticks(ax, eps)
    axs[2].axis("off")
    handles, names = axs[0].get_legend_handles_labels()
    axs[2].legend(handles, names, loc="center left", frameon=False, title="optimizer")
    figures.save(fig, path)


def plot_losses(path, curves: dict[str, TrainResult], eps: float, lrs: dict[str, float]) -> None:
    """One panel per optimizer: its full-batch loss against the step (log axis, so
    Adam's lr 1e-3 and the others' lr 0.5 share one axis); gd dashed on top in
    every other panel, for comparison."""
    labels = list(curves)
    ncols = min(len(labels), 3)
    nrows = -(-len(labels) // ncols)
    fig, axs = figures.subplots(
        nrows, ncols, figsize=(figures.FIG_WIDTH, 3.0 * nrows + 0.4), sharex=True, sharey=True,
        squeeze=False,
    )  # fmt: skip
    ref = curves.get("gd")
    for k, lab in enumerate(labels):
        ax = axs.flat[k]
        r = curves[lab]
        steps = np.asarray(r.snapshot_times) / lrs[lab]
        ax.loglog(steps[1:], figures.drawable(r.snapshot_loss[0, 1:]), color=f"C{k}", lw=2)
        esc = r.escape_time[0]
        if np.isfinite(esc):
            ax.axvline(esc / lrs[lab], color=f"C{k}", ls=":", lw=1)
        if ref is not None and lab != "gd":
            ax.loglog(np.asarray(ref.snapshot_times[1:]) / lrs["gd"], ref.snapshot_loss[0, 1:],
                      "--", color="k", lw=0.8, zorder=3)  # fmt: skip
        ax.set_title(f"{lab} (lr {lrs[lab]:g})" + ("" if lab == "gd" else ", dashed: gd"))
        if k % ncols == 0:
            ax.set_ylabel("full-batch loss R")
        if k >= len(labels) - ncols:
            ax.set_xlabel("step (log)")
    for ax in axs.flat[len(labels):]:
        ax.axis("off")
    fig.suptitle(f"eps = {eps:.2g}; dotted: the escape (loss halved)")
    figures.save(fig, path)
