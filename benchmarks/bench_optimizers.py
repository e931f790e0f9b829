#!/usr/bin/env python
"""Cost of an ensemble step under each optimizer, side by side with a gd step.

The same ensemble (three-layer tanh, d = 5, n = 100, widths 100/100, 16
members, float64 by default) is trained by ``condensation.training.network.train`` with
``optimizer`` gd, sgd (batch n and n/4), momentum and adam, each compiled
beforehand (``track_final_stage=False``, snapshots at 0 and ``steps`` only).
Contenders are timed in turn within each repeat (the machine is shared and
noisy), the ratio to the gd timing of the same repeat is taken, and medians
over repeats are reported.  Target: every ratio <= 1.5.

What costs what: gd is one forward and backward pass over the n samples; sgd
adds a forward pass over all n (the full-batch loss_k, for the escape check) to
a forward and backward pass over the batch, and draws a permutation once per
epoch; momentum and adam add a few elementwise passes over the weights.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np

import condensation  # noqa: F401  (jax_enable_x64, one device per core)
from condensation.core.activations import ACTIVATIONS
from condensation.training.network import train
from condensation.training.optimizers import Optimizer

N, D = 100, 5
TARGET = 1.5


def problem(m: int, members: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (N, D))
    y = np.tanh(x @ rng.standard_normal(D))
    params = [0.05 * rng.standard_normal((members, *s)) for s in [(m, D), (m, m), (1, m)]]
    return x, y, params


def contenders() -> dict[str, Optimizer]:
    return {
        "gd": Optimizer("gd"),
        "sgd (batch n)": Optimizer("sgd", batch_size=N),
        "sgd (batch n/4)": Optimizer("sgd", batch_size=N // 4),
        "momentum": Optimizer("momentum"),
        "adam": Optimizer("adam"),
    }


def runner(x, y, params, opt: Optimizer, dtype: str):
    act = ACTIVATIONS["tanh"].fn

    def run(steps: int):
        return train(
            params,
            x,
            y,
            act=act,
            lr=0.01 if opt.name == "adam" else 0.05,
            steps=steps,
            snapshots=np.array([0, steps]),
            dtype=dtype,
            track_final_stage=False,
            optimizer=opt,
        )

    return run


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer, shorter repeats")
    p.add_argument("--width", type=int, default=100)
    p.add_argument("--members", type=int, default=16)
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    p.add_argument("--json", metavar="PATH", help="also write the numbers to this JSON file")
    a = p.parse_args(argv)
    repeats, steps = (3, 200) if a.quick else (5, 1000)
    x, y, params = problem(a.width, a.members)
    runs = {name: runner(x, y, params, opt, a.dtype) for name, opt in contenders().items()}
    for run in runs.values():  # compile (steps are not static: one program each)
        run(2)
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            t0 = time.perf_counter()
            run(steps)
            times[name].append((time.perf_counter() - t0) / steps)
    ratios = {k: statistics.median(t / g for t, g in zip(times[k], times["gd"])) for k in runs}
    print(
        f"ensemble step, {a.members} members, widths {a.width}/{a.width}, n = {N}, {a.dtype}, "
        f"{repeats} repeats of {steps} steps (median)"
    )
    print(f"{'optimizer':<18}{'us / step':>12}{'ratio to gd':>14}")
    for k in runs:
        print(f"{k:<18}{1e6 * statistics.median(times[k]):>12.1f}{ratios[k]:>14.2f}")
    worst = max(v for k, v in ratios.items() if k != "gd")
    print(f"worst ratio {worst:.2f} (target <= {TARGET})")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"seconds_per_step": times, "ratio_to_gd": ratios}, f, indent=1)
    return 0 if worst <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
