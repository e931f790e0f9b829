#!/usr/bin/env python
"""Per-step cost of the final-stage watch next to the gradient, by width.

The three-layer trainer checks the final-stage condition (THEORY §5) at every step
until a member enters it.  Once the inner-product constraint holds, the angle
constraint needs the (m1 x m1) Gram matrix ``W^T W``: ``m1^2 m2`` multiply-adds,
about ``m1 / (3 n)`` gradients.  The watch
(:func:`condensation.core.final_stage.watch_final_stage`) first tries the
most negative pairs of its last Gram matrix (``O(K m2)``) and forms a new one
only when none still violates.

Timed side by side in one process, jitted, on a state where the inner-product
constraint holds and the angle constraint does not (the window before the entry),
three-layer tanh, ``n`` samples in ``d`` dimensions, widths ``m1 = m2 = m``:

- ``step``: one full-batch GD step (loss, gradient, update);
- ``gram``: the check as it was, :func:`~condensation.core.final_stage.final_stage_holds`;
- ``watch``: the watch when a witness still violates (the usual step);
- ``refresh``: the watch when none does (Gram matrix and new witnesses).

``old = gram / step`` and ``new = watch / step`` are the check's share of a step in
the window.  How often ``refresh`` happens along real trajectories is printed by
``--trajectory`` (default example, every step of the window stored).

    python benchmarks/bench_watch.py                       # widths 500 .. 4000, ~2 min
    python benchmarks/bench_watch.py --widths 1000 --trajectory 100 300
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from condensation.core.final_stage import (
    final_stage_holds,
    inner_product_margins,
    watch_final_stage,
    witness_pairs,
)
from condensation.core.network import loss as loss_fn

ROOT = Path(__file__).resolve().parents[1]


def _timed(fn, *args, repeats: int) -> float:
    """Median seconds of ``fn(*args)`` (compiled first), blocking on the result."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def window_state(m: int, d: int, n: int, seed: int = 0):
    """A three-layer state of width ``m`` in the window: every ``s_j v_j > 0`` and
    some pair of sign-corrected columns of ``W`` more than 90 degrees apart."""
    rng = np.random.default_rng(seed)
    b = rng.standard_normal((m, d)) * 1e-2
    z = rng.standard_normal(d)
    c = b @ z
    g = rng.standard_normal(m)
    spread = 1.5 * m**0.25  # pairs of columns at random angles: some beyond 90 degrees
    w = np.sign(c) * (g[:, None] + spread * rng.standard_normal((m, m))) * 1e-2
    a = g[None, :] * 1e-2
    assert np.all(inner_product_margins(a[0], w, c, np) > 0)
    assert not final_stage_holds(a[0], w, c, xp=np)
    x = rng.standard_normal((n, d))
    y = np.tanh(x @ z)
    return (jnp.asarray(b), jnp.asarray(w), jnp.asarray(a)), jnp.asarray(x), jnp.asarray(y), c


def measure(m: int, d: int, n: int, repeats: int) -> dict:
    """The four timings at width ``m`` (see the module docstring)."""
    params, x, y, c = window_state(m, d, n)
    b, w, a = params

    @jax.jit
    def step(p):
        g = jax.grad(loss_fn)(p, x, y, jnp.tanh)
        return tuple(pi - 0.05 * gi for pi, gi in zip(p, g))

    gram = jax.jit(final_stage_holds)
    watch = jax.jit(watch_final_stage)
    cj = jnp.asarray(c)
    _, warm = watch(a[0], w, cj, witness_pairs(m))  # the state's most negative pairs
    cold = witness_pairs(m)
    out = {"width": m, "n": n}
    out["step"] = _timed(step, params, repeats=repeats)
    out["gram"] = _timed(gram, a[0], w, cj, repeats=repeats)
    out["watch"] = _timed(watch, a[0], w, cj, warm, repeats=repeats)
    out["refresh"] = _timed(watch, a[0], w, cj, cold, repeats=repeats)
    out["old_share"] = out["gram"] / out["step"]
    out["new_share"] = out["watch"] / out["step"]
    return out


def trajectory(m: int) -> dict:
    """The default example at width ``m``: every step stored from 200 before the
    inner-product constraint first holds; how many of the window's steps form a
    Gram matrix with the watch (replayed on the stored states)."""
    import condensation as C

    cfg = C.load_config(ROOT / "configs" / "default.toml", [f"model.widths=[{m},{m}]"])
    data, spec, ens = C.prepare(cfg)
    steps = cfg.train.steps
    r = C.train(
        ens.params, data.x, data.y, act=spec.activation.fn, lr=cfg.train.lr, steps=steps,
        snapshots=np.arange(0, steps + 1, 50), track_final_stage=False,
    )  # fmt: skip
    b, w, a = (np.asarray(s[0]) for s in r.snapshots)
    inner = np.all(inner_product_margins(a[:, 0], w, b @ data.z, np) > 0, axis=-1)
    if not inner.any():
        return {"width": m, "window_steps": 0, "gram_steps": 0}
    lo = max(0, int(np.arange(0, steps + 1, 50)[np.argmax(inner)]) - 200)
    hi = min(steps, lo + 1500)
    r = C.train(
        ens.params, data.x, data.y, act=spec.activation.fn, lr=cfg.train.lr, steps=hi,
        snapshots=np.r_[0, np.arange(lo, hi + 1)], track_final_stage=False,
    )  # fmt: skip
    b, w, a = (np.asarray(s[0, 1:]) for s in r.snapshots)
    c = b @ data.z
    pairs, window, grams, entry = witness_pairs(m), 0, 0, None
    watch = jax.jit(watch_final_stage)
    for k in range(len(w)):
        if not np.all(inner_product_margins(a[k, 0], w[k], c[k], np) > 0):
            continue
        window += 1
        before = np.asarray(pairs)
        holds, pairs = watch(a[k, 0], w[k], c[k], pairs)
        s = np.sign(c[k])
        still = [s[i] * s[j] * (w[k][:, i] @ w[k][:, j]) < 0 for i, j in before]
        grams += not any(still)
        if bool(holds):
            entry = lo + k
            break
    return {"width": m, "window_steps": window, "gram_steps": grams, "entry": entry}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--widths", type=int, nargs="+", default=[500, 1000, 2000, 4000])
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--d", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--trajectory", type=int, nargs="*", default=[], help="widths to replay")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    rows = []
    print(
        f"bench_watch: n={a.n}, d={a.d}, median of {a.repeats}, float64, device {jax.devices()[0]}"
    )
    print(f"{'width':>6} {'step_ms':>8} {'gram_ms':>8} {'watch_ms':>9} {'refresh_ms':>10} "
          f"{'old/step':>9} {'new/step':>9}")  # fmt: skip
    for m in a.widths:
        r = measure(m, a.d, a.n, a.repeats)
        rows.append(r)
        print(
            f"{m:>6} {1e3 * r['step']:>8.2f} {1e3 * r['gram']:>8.2f} {1e3 * r['watch']:>9.3f} "
            f"{1e3 * r['refresh']:>10.2f} {r['old_share']:>8.2f}x {r['new_share']:>8.3f}x",
            flush=True,
        )
    for m in a.trajectory:
        t = trajectory(m)
        rows.append({"trajectory": t})
        print(f"trajectory width {m}: {t}", flush=True)
    if a.json:
        a.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
