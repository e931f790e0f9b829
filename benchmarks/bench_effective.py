"""Effective-dynamics speed, measured side by side in one run.

1. T* of a wide three-layer network (widths 1000/1000, d = 5, random init):
   this package's blow-up solver (spectral form: one eigendecomposition of the
   conserved m1 x m1 matrix, then an O(m1) right-hand side; system construction
   included in the timing; reduced form (a, W, c) shown too) against
   scipy's DOP853 on the plain (a, W, B) system with a terminal event on a
   large norm (its T* = event time + the type-I remaining-time estimate).
   Both are asked for T* to relative 1e-8; the scipy tolerance is the loosest
   that reaches it (checked against a tight reference).
2. 64 initial conditions at width 100: one batch (``solve_batch``: spread over
   the devices, one after another on each) against a loop of single solves
   (both compiled; compile time excluded).

Run: python benchmarks/bench_effective.py [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from scipy.integrate import solve_ivp

import condensation  # noqa: F401  (float64)
from condensation.effective.blowup import Tolerances
from condensation.effective.system import build_system, solve, solve_batch


def random_net(rng, m1, m2, d, eps):
    return [
        eps * rng.standard_normal((m1, d)),
        eps * rng.standard_normal((m2, m1)),
        eps * rng.standard_normal((1, m2)),
    ]


def scipy_t_star(params, z, rtol, growth=1e9):
    b, w, a = (np.array(p, dtype=float) for p in params)
    m1, d = b.shape
    m2 = w.shape[0]
    sizes = [m2, m2 * m1, m1 * d]

    def rhs(t, y):
        a_, w_, b_ = np.split(y, np.cumsum(sizes)[:-1])
        w_ = w_.reshape(m2, m1)
        b_ = b_.reshape(m1, d)
        c = b_ @ z
        v = w_.T @ a_
        return np.concatenate([w_ @ c, np.outer(a_, c).ravel(), np.outer(v, z).ravel()])

    y0 = np.concatenate([a[0], w.ravel(), b.ravel()])
    n0 = np.linalg.norm(y0)

    def event(t, y):
        return np.linalg.norm(y) - growth * n0

    event.terminal = True
    t_guess = 100.0 / (np.linalg.norm(z) * n0)
    sol = solve_ivp(
        rhs, (0, 1e6 * t_guess), y0, method="DOP853", rtol=rtol, atol=1e-30, events=event
    )
    y = sol.y_events[0][0]
    t = sol.t_events[0][0]
    f = rhs(t, y)
    rate = (y @ f) / (y @ y)  # d log|y| / dt = 1 / (T* - t) for a quadratic blow-up
    return t + 1.0 / rate, sol.nfev


def timed(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--only", choices=["tstar", "batch"], help="run one of the two parts")
    opts = ap.parse_args()
    rng = np.random.default_rng(0)
    d = 5
    z = rng.standard_normal(d)
    z /= np.linalg.norm(z) * 2
    m = 300 if opts.quick else 1000
    ratio = float("nan")
    rows = []
    if opts.only != "batch":
        ratio, rows = _t_star_part(params_fn=lambda: random_net(rng, m, m, d, 1e-3), z=z, m=m, d=d)
    batch_ratio = float("nan")
    if opts.only != "tstar":
        batch_ratio = _batch_part(rng, z, d, opts.quick)
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump(
                {"t_star_speedup_vs_scipy": ratio, "batch_vs_loop": batch_ratio, "rows": rows},
                f,
                indent=2,
            )


def _t_star_part(params_fn, z, m, d):
    params = params_fn()
    tol = Tolerances(rtol=1e-10, atol=1e-12, t_tol=1e-12)
    ref = solve(build_system(params, z, form="reduced"), Tolerances())

    def ours(form):
        return solve(build_system(params, z, form=form), tol)

    rows = []
    for form in ("spectral", "reduced"):
        ours(form)  # compile
        t_f, sol = timed(lambda f=form: ours(f), 3 if form == "spectral" else 1)
        rows.append(
            (
                f"ours ({form}, Dopri8, rtol 1e-10)",
                t_f,
                sol.T_star,
                abs(sol.T_star - ref.T_star) / ref.T_star,
            )
        )
    t_ours = rows[0][1]
    best = None
    for rtol in (1e-8, 1e-9, 1e-10, 1e-11):
        t_sc, (ts, nfev) = timed(lambda r=rtol: scipy_t_star(params, z, r), 1)
        err = abs(ts - ref.T_star) / ref.T_star
        rows.append((f"scipy DOP853 rtol {rtol:g} (nfev {nfev})", t_sc, ts, err))
        if err <= 1e-8:
            best = t_sc
            break
    print(f"T* at widths {m}/{m}, d = {d} (reference T* = {ref.T_star:.12g})")
    for name, t, ts, err in rows:
        print(f"  {name:45s} {t:8.3f} s   T* = {ts:.12g}   rel err {err:.1e}")
    ratio = best / t_ours if best else float("nan")
    print(f"  speed-up over the cheapest scipy run reaching 1e-8: {ratio:.1f}x")
    return ratio, rows


def _batch_part(rng, z, d, quick):
    tol = Tolerances(rtol=1e-10, atol=1e-12, t_tol=1e-12)
    n_ic, mb = (16, 50) if quick else (64, 100)
    systems = [
        build_system(random_net(rng, mb, mb, d, 1e-3), z, form="reduced") for _ in range(n_ic)
    ]
    solve_batch(systems, tol)  # compile for this batch size
    solve(systems[0], tol)
    t_batch, t_loop = [], []
    for _ in range(3):  # interleaved repeats, medians: the machine is shared
        t_batch.append(timed(lambda: solve_batch(systems, tol), 1)[0])
        t_loop.append(timed(lambda: [solve(s, tol) for s in systems], 1)[0])
    tb, tl = float(np.median(t_batch)), float(np.median(t_loop))
    print(
        f"{n_ic} initial conditions at width {mb}: batch {tb:.2f} s, loop {tl:.2f} s, "
        f"loop/batch {tl / tb:.2f}x"
    )
    return tl / tb


if __name__ == "__main__":
    main()
