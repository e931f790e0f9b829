"""``phase-diagram``: regime maps of condensation over init exponents (THEORY §8).

Every grid cell trains networks at several widths ``m`` and seeds to a loss
tolerance or a step budget (:mod:`condensation.training.tolerance`: learning rate
scaled with the init), measures each layer's ``RD_k = |W_k(T) - W_k(0)|_F /
|W_k(0)|_F`` and fits the slope ``S_k = d log RD_k / d log m``
(:mod:`condensation.core.regime`: ``S < -0.1`` linear, ``S > 0.1`` condensed,
in between critical; ``slope_threshold``).  The cells are tasks on the one
engine (:mod:`condensation.engine`, ``workers``; 0 runs them in this process,
as ``reproduce`` does, which already runs experiments side by side).

- ``depth = 2``: Luo et al.'s coordinates ``(gamma, gamma')``; the layer
  exponents follow from fixing the output multiplier ``alpha = m^alpha_exponent``
  (default 0: ``kappa = 1``, :func:`condensation.core.init_scales.luo_layer_exponents`):
  ``std(W1) = m^-(gamma - alpha_exponent - gamma')/2``,
  ``std(W2) = m^-(gamma - alpha_exponent + gamma')/2``, ``kappa = m^-alpha_exponent``.
  The theorems' regime of each cell is compared with the measured one of the
  input layer.
- ``depth = 3``: two layers' exponents (``layer_axes``) over ``exponents_a`` and
  ``exponents_b``, the third at ``exponent_other``; std of layer k ``m^-g_k``,
  ``kappa = 1``, both hidden widths ``m``.  Derived here: no theorem.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from condensation.config.checks import check_cell_memory
from condensation.core.activations import get_activation
from condensation.core.init_scales import (
    boundary_distance,
    line_distance,
    luo_layer_exponents,
    two_layer_regime,
)
from condensation.core.regime import classify, geo_mean, width_slope
from condensation.data import load_dataset
from condensation.engine import Engine, Task
from condensation.errors import InputError
from condensation.experiments import Figure, Progress, data_config, require_counts
from condensation.experiments._phase_figures import plot_map, plot_rd_lines
from condensation.models import NetworkSpec, antisymmetric
from condensation.store.rundir import save_arrays
from condensation.sweep.table import write_table
from condensation.training.tolerance import train_to_tolerance

NAME = "phase-diagram"
TITLE = "Phase diagrams: linear, critical and condensed regimes over init exponents"
SECTION = "open-questions"
STORY = """
Which initialisations train like a kernel (the weights barely move as the width
grows), which condense, and which sit in between? For each cell of a grid of init
exponents, networks of several widths m are trained to a loss tolerance (or a step
budget) with a learning rate scaled to the init, and each layer's relative
distance RD_k = |W_k(T) - W_k(0)| / |W_k(0)| is fitted against m: a negative
slope is the linear regime, a positive one condensation, about zero critical.
Two layers: the coordinates (gamma, gamma') and the boundaries, two rays from
(1, 0) (gamma = 1 for gamma' <= 0, gamma' = gamma - 1 for gamma >= 1), are those
of Luo, Xu, Ma and Zhang (JMLR 2021), whose theorems
(as THEORY §8 states them) say which regime each cell is in; the map checks them
at finite widths, with one free exponent fixed by this project (the output
multiplier, kappa = 1 by default). Three layers: every layer gets its own
exponent and its own RD slope. Zhou et al. (NeurIPS 2022) drew such maps, but
their coordinates were not available here, so the three-layer map is a derived,
empirical generalisation: evidence on one data set and a few seeds, not a theorem.
Cells whose training diverged or never left its plateau are marked, not classified.
"""

DEFAULTS = {
    "depth": 2,
    "activation": "relu",
    "gammas": [0.25, 0.625, 1.0, 1.375, 1.75],
    "gamma_primes": [-1.0, -0.5, 0.0, 0.5, 1.0],
    "alpha_exponent": 0.0,  # alpha = m^alpha_exponent, kappa = 1/alpha (the free exponent)
    "layer_axes": [1, 3],  # depth 3: the two layers whose exponents are the axes
    "exponents_a": [0.25, 0.75, 1.25, 1.75],  # depth 3: exponent of layer layer_axes[0]
    "exponents_b": [0.0, 0.5, 1.0, 1.5],  # depth 3: exponent of layer layer_axes[1]
    "exponent_other": 1.25,  # depth 3: the remaining layer's exponent
    "widths": [50, 150, 500, 1600],  # depth 2 (1.5 decades)
    "widths_depth3": [16, 40, 100, 250],  # depth 3 (1.2 decades: W2 is m x m)
    "seeds": [0, 1, 2],
    "antisymmetric": True,  # f(theta_0) = 0 (Luo et al.)
    "lr0": 1.0,
    "tol": 1e-3,  # stop at loss <= tol * loss_0
    "max_steps": 20000,
    "plateau_drop": 0.1,  # left the plateau: loss <= (1 - plateau_drop) loss_0
    "slope_threshold": 0.1,
    "far": 0.3,  # depth 2: agreement reported on cells at least this far from the boundary
    "workers": 2,  # engine workers for the cells (0: in this process)
}
# three points of x^3 - 0.5 x on [-1, 1] (values on a line: every regime can fit them)
DATA_DEFAULT = {"dataset": "cubic", "n": 3, "bias": True}
QUICK = {
    "gammas": [0.5, 1.5],
    "gamma_primes": [-0.5, 0.5],
    "widths": [20, 80],
    "widths_depth3": [10, 30],
    "exponents_a": [0.5, 1.5],
    "exponents_b": [0.0, 1.5],
    "seeds": [0],
    "max_steps": 3000,
    "workers": 0,
}
# `reproduce` (full) runs this reduced grid; `condensation run phase-diagram` the DEFAULTS
REPRODUCE = {
    "gammas": [0.25, 1.0, 1.75],
    "gamma_primes": [-1.0, 0.0, 1.0],
    "widths": [30, 100, 300],
    "seeds": [0, 1],
    "max_steps": 8000,
    "workers": 0,
}
SECONDS = (4, 8)  # quick: CPU s cold, one device (bench_reproduce 2026-12-05); full: earlier

FIGURES = (
    Figure(
        "figures/phase_diagram.png",
        "RD slope S = d log RD / d log m of each layer's weights over the grid (red: "
        "condensed, S > 0; blue: linear, S < 0). Depth 2: the input layer over (gamma, "
        "gamma'), with the theorems' boundaries, two rays from (1, 0): gamma = 1 for "
        "gamma' <= 0 and gamma' = gamma - 1 for gamma >= 1 (black) "
        "and each cell's measured regime (L, C, c = critical; x = diverged or plateau); a "
        "ring marks disagreement with the theorems. Depth 3: one panel per layer.",
        ("agreement_all", "agreement_far", "n_cells", "n_far", "n_unclassified",
         "all_small_condensed_layer1", "n_condensed_layer1"),
    ),  # fmt: skip
    Figure(
        "figures/rd_vs_width.png",
        "RD of the input layer against the width for a few cells (geometric mean over "
        "seeds; the slope of each line is the cell's S).",
    ),
)


def _check(p: dict) -> None:
    if p["depth"] not in (2, 3):
        raise InputError("depth", p["depth"], "must be 2 or 3", "use --set depth=2 or depth=3")
    act = p["activation"]
    try:
        get_activation(act)
    except Exception:  # noqa: BLE001 - the registry's own error names the choices
        from condensation.core.activations import ACTIVATIONS

        raise InputError(
            "activation", act, "unknown activation", f"use one of {', '.join(sorted(ACTIVATIONS))}"
        ) from None
    widths = p["widths"] if p["depth"] == 2 else p["widths_depth3"]
    key = "widths" if p["depth"] == 2 else "widths_depth3"
    require_counts({key: min(widths)}, (key,))
    if len(set(widths)) < 2:
        raise InputError(key, widths, "need at least two different widths", "give 2+ widths")
    if p["antisymmetric"] and any(m % 2 for m in widths):
        raise InputError(key, widths, "antisymmetric needs even widths", "give even widths")
    axes = p["layer_axes"]
    if len(axes) != 2 or len(set(axes)) != 2 or not all(1 <= a <= 3 for a in axes):
        raise InputError(
            "layer_axes", axes, "need two different layers in 1..3", "e.g. layer_axes=[1, 3]"
        )
    if not 0 < p["tol"] < 1:
        raise InputError("tol", p["tol"], "must be in (0, 1)", "e.g. tol=1e-3")
    if not 0 < p["plateau_drop"] < 1:
        raise InputError("plateau_drop", p["plateau_drop"], "must be in (0, 1)", "e.g. 0.1")
    require_counts(p, ("max_steps",))
    data = load_dataset(data_config(p, DATA_DEFAULT))  # its size, for the memory check
    check_cell_memory(p, data.d_in, data.x.shape[0], key, DEFAULTS[key])


def cell_list(p: dict) -> list[dict]:
    """Every grid cell: its coordinates and the per-layer exponent rule."""
    cells = []
    if p["depth"] == 2:
        for g in p["gammas"]:
            for gp in p["gamma_primes"]:
                g_w, g_a = luo_layer_exponents(g, gp, p["alpha_exponent"])
                cells.append(
                    {"gamma": g, "gamma_prime": gp, "exponents": [g_w, g_a],
                     "kappa_exponent": p["alpha_exponent"]}
                )  # fmt: skip
        return cells
    a, b = (k - 1 for k in p["layer_axes"])
    for ga in p["exponents_a"]:
        for gb in p["exponents_b"]:
            ex = [p["exponent_other"]] * 3
            ex[a], ex[b] = ga, gb
            cells.append({"exponents": ex, "kappa_exponent": 0.0})
    return cells


def run_cell(cell: dict, p: dict) -> dict:
    """One cell (an engine task): every width and seed trained to the tolerance;
    returns per width the stops and the RD_k of every member.

    Every width is zero-padded to the largest one (zero neurons get zero gradients
    and stay zero, since sigma(0) = 0; norms, the tangent kernel and RD are those of
    the unpadded network), so one compiled loop serves every width and every cell."""
    data = load_dataset(data_config(p, DATA_DEFAULT))
    act = get_activation(p["activation"])
    slope = act.slope_at_zero if math.isfinite(act.slope_at_zero) else 1.0  # ReLU: 1 for x > 0
    depth = p["depth"]
    widths = list(p["widths"] if depth == 2 else p["widths_depth3"])
    big = NetworkSpec(data.d_in, (max(widths),) * (depth - 1), act).shapes
    members, kappas = [], []
    for m in widths:
        spec = NetworkSpec(data.d_in, (m,) * (depth - 1), act)
        stds = [float(m) ** -g for g in cell["exponents"]]
        for s in p["seeds"]:
            rng = np.random.default_rng([s, m])  # numpy: no compiled draw per shape
            b = [rng.standard_normal(shape) for shape in spec.shapes]
            b = antisymmetric(b) if p["antisymmetric"] else b
            members.append([_pad(stds[k] * b[k], big[k]) for k in range(depth)])
        kappas.append(float(m) ** -cell["kappa_exponent"])
    if len(set(kappas)) > 1:  # kappa depends on m: one call per width (same shapes)
        parts = [_train(members[i * len(p["seeds"]) : (i + 1) * len(p["seeds"])], data, act,
                        slope, kappas[i], p) for i in range(len(widths))]  # fmt: skip
        stop = [s for r in parts for s in r.stop]
        rd_end = np.concatenate([r.rd_end for r in parts])
        rd_max = np.concatenate([r.rd_max for r in parts])
        steps = np.concatenate([r.steps for r in parts])
    else:
        r = _train(members, data, act, slope, kappas[0], p)
        stop, rd_end, rd_max, steps = r.stop, r.rd_end, r.rd_max, r.steps
    n_s = len(p["seeds"])
    return {
        "widths": widths,
        "stops": [stop[i * n_s : (i + 1) * n_s] for i in range(len(widths))],
        "rd_end": rd_end.reshape(len(widths), n_s, depth).tolist(),
        "rd_max": rd_max.reshape(len(widths), n_s, depth).tolist(),
        "steps": steps.reshape(len(widths), n_s).tolist(),
    }


def _pad(w: np.ndarray, shape) -> np.ndarray:
    out = np.zeros(shape)
    out[: w.shape[0], : w.shape[1]] = w
    return out


def _train(members, data, act, slope, kappa, p):
    params = [np.stack([mem[k] for mem in members]) for k in range(len(members[0]))]
    return train_to_tolerance(
        params, data.x, data.y, act=act.fn, slope_at_zero=slope, output_scale=kappa,
        lr0=p["lr0"], tol=p["tol"], max_steps=p["max_steps"], plateau_drop=p["plateau_drop"],
    )  # fmt: skip


def summarise_cell(cell: dict, res: dict, p: dict) -> dict:
    """The table row of one cell: coordinates, widths, per-layer slopes and regimes."""
    depth = p["depth"]
    stops = [s for per_width in res["stops"] for s in per_width]
    counts = {f"n_{k}": stops.count(k) for k in ("tolerance", "budget", "plateau", "diverged")}
    status = "diverged" if counts["n_diverged"] else "plateau" if counts["n_plateau"] else "ok"
    row: dict = {}
    if depth == 2:
        row.update(gamma=cell["gamma"], gamma_prime=cell["gamma_prime"])
    else:
        row.update({f"g_layer{k + 1}": g for k, g in enumerate(cell["exponents"])})
    widths = res["widths"]
    row.update(width_min=min(widths), width_max=max(widths))
    rd_end, rd_max = np.asarray(res["rd_end"]), np.asarray(res["rd_max"])  # (W, seeds, L)
    for k in range(depth):
        s_end = width_slope(widths, [geo_mean(rd_end[w, :, k]) for w in range(len(widths))])
        s_max = width_slope(widths, [geo_mean(rd_max[w, :, k]) for w in range(len(widths))])
        row[f"rd_slope_layer{k + 1}"] = s_end
        row[f"regime_layer{k + 1}"] = (
            classify(s_end, p["slope_threshold"]) if status == "ok" else status
        )
        row[f"rd_max_slope_layer{k + 1}"] = s_max
    if depth == 2:
        theory = two_layer_regime(cell["gamma"], cell["gamma_prime"])
        row.update(
            theory_regime=theory,
            boundary_distance=boundary_distance(cell["gamma"], cell["gamma_prime"]),
            line_distance=line_distance(cell["gamma"], cell["gamma_prime"]),
            agrees=row["regime_layer1"] == theory,
        )
    row.update(status=status, **counts, max_steps_taken=int(np.max(res["steps"])))
    return row


def run(params: dict, out_dir: Path, progress: Progress) -> dict:
    p = params
    _check(p)
    cells = cell_list(p)
    results: dict[int, dict] = {}
    tasks = [Task(str(i), run_cell, (c, p)) for i, c in enumerate(cells)]
    progress("cells", 0, len(cells))
    with Engine(workers=min(p["workers"], len(cells)), retries=1) as eng:
        for o in eng.run(tasks):
            if not o.ok:
                o.raise_input_error()
                raise RuntimeError(f"phase-diagram cell {o.key} failed: {o.error}")
            results[int(o.key)] = o.value
            progress("cells", len(results), len(cells))
    rows = [summarise_cell(c, results[i], p) for i, c in enumerate(cells)]
    write_table(out_dir / "arrays", rows, name="phase_diagram")
    save_arrays(
        out_dir / "arrays" / "phase_diagram_rd.npz",
        exponents=np.array([c["exponents"] for c in cells]),
        widths=np.array(results[0]["widths"]),
        rd_end=np.array([results[i]["rd_end"] for i in range(len(cells))]),  # (C, W, S, L)
        rd_max=np.array([results[i]["rd_max"] for i in range(len(cells))]),
    )
    plot_map(rows, p, out_dir / "figures" / "phase_diagram.png")
    plot_rd_lines(cells, results, rows, p, out_dir / "figures" / "rd_vs_width.png")
    return headline(rows, p)


def headline(rows: list[dict], p: dict) -> dict:
    """Agreement with the theorems (depth 2) or the first-layer map's numbers (depth 3)."""
    out: dict = {
        "n_cells": len(rows),
        "n_unclassified": sum(r["status"] != "ok" for r in rows),
        "depth": p["depth"],
    }
    if p["depth"] == 2:
        far = [r for r in rows if r["boundary_distance"] >= p["far"] - 1e-12]
        out.update(
            agreement_all=float(np.mean([r["agrees"] for r in rows])),
            agreement_far=float(np.mean([r["agrees"] for r in far])) if far else None,
            n_far=len(far),
            n_far_agree=sum(r["agrees"] for r in far),
        )
    else:
        cond = [r for r in rows if r["regime_layer1"] == "condensed"]
        out["n_condensed_layer1"] = len(cond)
        small = [r for r in rows if all(r[f"g_layer{k}"] >= 1 for k in (1, 2, 3))]  # std <= 1/m
        out["n_all_small_cells"] = len(small)
        out["all_small_condensed_layer1"] = (
            all(r["regime_layer1"] == "condensed" for r in small) if small else None
        )
    return out
