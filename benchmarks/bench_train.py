#!/usr/bin/env python
"""Throughput of the compiled ensemble GD trainer, side by side with its baselines.

Two measurements in one run.  The machine may be shared and noisy, so every
contender is timed in turn within each repeat (interleaved), ratios are taken
between timings of the same repeat, and medians over repeats are reported.

A. m = 100 (three-layer tanh, d = 5, n = 100, widths 100/100, 64 members),
   float64 and float32: network-steps per second of
   ``condensation.training.network.train`` (``track_final_stage=False``; again
   with it on, the ``tracking`` columns: every per-step watch as ``condensation
   train`` runs it; snapshots only at 0 and ``steps``, compiled beforehand)
   against a plain PyTorch-eager loop over the 64 networks (manual forward,
   ``loss.backward()``, in-place SGD under ``torch.no_grad``, CPU, same dtype),
   with torch's default thread count and with one thread.
   Target: trainer / torch >= 5 (checked against the faster torch setting).
   Also the strongest alternative measured on this machine, reported beside it
   (no target): ``torch.compile`` (inductor, CPU) of the same GD step batched
   over the 64 members, backpropagation written out, one compiled call per step,
   at default threads and one thread (float32 by default, ``--compile-dtypes``).

B. m = 1000 (widths 1000/1000, d = 5, n = 100, float32, 1 and 4 members): the
   trainer's time per GD step against the time of the three (n x m)-by-(m x m)
   products that dominate it, jitted standalone at the same shapes, dtype and
   batch: forward ``H1 @ W2^T``, backward ``D2 @ W2``, gradient ``D2^T @ H1``
   (sample-major, and feature-major as the trainer runs them; the faster of the
   two is the ceiling).  ``fraction = t(three matmuls) / t(step)``.
   Target: >= 50 %.  numpy and torch on the same products, for context.

The same matmul ceiling is also measured in A ("matmul share"): it says how
much of the trainer's step is the unavoidable big products.

See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

import condensation  # noqa: F401  (turns on jax_enable_x64, one device per core)
from condensation.training.devices import member_mesh, over_members, place_members
from condensation.training.network import train, trainer_loss

try:
    import torch
except ImportError:  # the optional `bench` extra
    torch = None

N, D = 100, 5
LR = 0.05
SCALE = 0.05  # init scale of every weight: no divergence, no denormals
RATIO_TARGET = 5.0
FRACTION_TARGET = 0.5
# Fewest GD steps per timed train() call: its fixed cost (input conversion, the
# two loss evaluations, snapshot copies) is then a few % of the call, and the
# job is large enough for train() to spread it over the cores (as a real run is).
MIN_STEPS = 100


# --------------------------------------------------------------------------- problem


def make_problem(m: int, members: int, seed: int = 0):
    """Teacher data (n x d) and ``members`` independent float64 inits of a d-m-m-1 net."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, D))
    y = np.tanh(x @ rng.standard_normal(D))
    shapes = [(m, D), (m, m), (1, m)]
    params = [SCALE * rng.standard_normal((members, *s)) for s in shapes]
    return x, y, params


def matmul_flops(m: int, members: int) -> float:
    """Flops of the three big products of one GD step of ``members`` networks."""
    return 3 * 2.0 * N * m * m * members


# --------------------------------------------------------------------------- contenders


def trainer_runner(x, y, params, dtype: str, track: bool = False) -> Callable[[int], object]:
    """``steps -> TrainResult`` with the benchmark's fixed options; ``track`` turns
    on every per-step watch (the final-stage entry, as ``condensation train`` runs)."""

    def run(steps: int):
        return train(
            params,
            x,
            y,
            act=jnp.tanh,
            lr=LR,
            steps=steps,
            snapshots=np.array([0, steps]),
            dtype=dtype,
            track_final_stage=track,
        )

    return run


def vmapped_runner(x, y, params, dtype: str) -> Callable[[int], object]:
    """``steps -> params``: the layout the trainer replaced, for comparison.

    Plain GD (no bookkeeping), each loop iteration one step of all members at
    once (vmapped), the members spread over the devices as in the trainer.
    """
    dt = jnp.dtype(dtype)
    xj, yj = jnp.asarray(x, dt), jnp.asarray(y, dt)
    grad = jax.vmap(jax.grad(lambda ws: trainer_loss(ws, xj, yj, jnp.tanh)))
    mesh = member_mesh(params[0].shape[0])

    def gd(ws, steps):
        step = lambda k, p: tuple(w - LR * g for w, g in zip(p, grad(p)))  # noqa: E731
        return jax.lax.fori_loop(0, steps, step, ws)

    run_steps = jax.jit(over_members(gd, mesh, 1))
    p0 = place_members(tuple(jnp.asarray(p, dt) for p in params), mesh)

    def run(steps: int):
        return jax.block_until_ready(run_steps(p0, jnp.int64(steps)))

    return run


def torch_runner(x, y, params, dtype: str, threads: int | None = None) -> Callable[[int], list]:
    """``steps -> nets``: every network trained alone, eager PyTorch, CPU.

    The networks are built once, outside the timed calls, and keep training from
    call to call; ``threads`` sets ``torch.set_num_threads`` for the call (None:
    torch's default).
    """
    tdt = getattr(torch, dtype)
    xt = torch.tensor(x, dtype=tdt)
    yt = torch.tensor(y, dtype=tdt)
    nets = [
        [torch.tensor(p[i], dtype=tdt).requires_grad_() for p in params]
        for i in range(params[0].shape[0])
    ]

    def run(steps: int):
        before = torch.get_num_threads()
        if threads is not None:
            torch.set_num_threads(threads)
        try:
            for ws in nets:  # a Python loop over the networks ...
                for _ in range(steps):  # ... each trained on its own
                    h = xt
                    for w in ws[:-1]:
                        h = torch.tanh(h @ w.T)
                    f = (h @ ws[-1].T)[:, 0]
                    r = f - yt
                    loss = 0.5 * (r * r).mean()
                    loss.backward()
                    with torch.no_grad():
                        for w in ws:
                            w.sub_(w.grad, alpha=LR)
                            w.grad = None
        finally:
            torch.set_num_threads(before)
        return nets

    return run


def batched_gd_step(x, y, lr: float):
    """One GD step of every network at once, batched over members, backpropagation
    written out (the trainer's math: ``R = mean(r^2) / 2``, ``W -= lr grad R``), for
    ``torch.compile``: ``(W1 (E, m, d), W2 (E, m, m), W3 (E, 1, m)) -> updated``."""
    n = x.shape[0]

    def step(w1, w2, w3):
        h1 = torch.tanh(torch.matmul(x, w1.transpose(1, 2)))  # (E, n, m)
        h2 = torch.tanh(torch.matmul(h1, w2.transpose(1, 2)))  # (E, n, m)
        df = (torch.matmul(h2, w3.transpose(1, 2))[..., 0] - y) / n  # (E, n)
        g3 = torch.matmul(df[:, None, :], h2)
        da2 = df[..., None] * w3 * (1 - h2 * h2)
        g2 = torch.matmul(da2.transpose(1, 2), h1)
        da1 = torch.matmul(da2, w2) * (1 - h1 * h1)
        g1 = torch.matmul(da1.transpose(1, 2), x)
        return w1 - lr * g1, w2 - lr * g2, w3 - lr * g3

    return step


def torch_compile_runner(x, y, params, dtype: str, threads: int | None = None):
    """``steps -> (W1, W2, W3)``: :func:`batched_gd_step` compiled by ``torch.compile``
    (inductor, CPU), one call per step, all members batched; weights carried over
    from call to call.  ``threads``: ``torch.set_num_threads`` during the calls."""
    tdt = getattr(torch, dtype)
    xt, yt = torch.tensor(x, dtype=tdt), torch.tensor(y, dtype=tdt)
    step = torch.compile(batched_gd_step(xt, yt, LR))
    state = [tuple(torch.tensor(p, dtype=tdt) for p in params)]

    def run(steps: int):
        before = torch.get_num_threads()
        if threads is not None:
            torch.set_num_threads(threads)
        try:
            with torch.no_grad():
                ws = state[0]
                for _ in range(steps):
                    ws = step(*ws)
                state[0] = ws
        finally:
            torch.set_num_threads(before)
        return ws

    return run


def check_same_math(x, y, params, dtype: str, steps: int = 5) -> float:
    """Max |W_trainer - W_torch| after a few steps from the same init (2 members)."""
    sub = [p[:2] for p in params]
    a = trainer_runner(x, y, sub, dtype)(steps)
    b = torch_runner(x, y, sub, dtype)(steps)
    return max(
        float(np.max(np.abs(a.snapshots[k][i, -1] - b[i][k].detach().numpy())))
        for i in range(2)
        for k in range(3)
    )


def big_matmul_operands(m: int, members: int, dtype: str, seed: int = 1):
    rng = np.random.default_rng(seed)
    h1 = rng.standard_normal((members, N, m)).astype(dtype)
    w2 = rng.standard_normal((members, m, m)).astype(dtype)
    d2 = rng.standard_normal((members, N, m)).astype(dtype)
    return h1, w2, d2


@jax.jit
def _three_row(h1, w2, d2):
    """Sample-major: H1, D2 of shape (E, n, m)."""
    fwd = jnp.einsum("eni,eji->enj", h1, w2)  # H1 @ W2^T
    bwd = jnp.einsum("enj,eji->eni", d2, w2)  # D2 @ W2
    grad = jnp.einsum("enj,eni->eji", d2, h1)  # D2^T @ H1
    return fwd, bwd, grad


@jax.jit
def _three_col(h1t, w2, d2t):
    """Feature-major, as the trainer runs them: H1^T, D2^T of shape (E, m, n)."""
    fwd = jnp.einsum("eji,ein->ejn", w2, h1t)  # (H1 @ W2^T)^T = W2 @ H1^T
    bwd = jnp.einsum("eji,ejn->ein", w2, d2t)  # (D2 @ W2)^T = W2^T @ D2^T
    grad = jnp.einsum("ejn,ein->eji", d2t, h1t)  # D2^T @ H1
    return fwd, bwd, grad


def _three_spread(mesh):
    """Feature-major products, laid out as the trainer runs them: members spread
    over the devices of ``mesh``, one member after another on each."""

    def one(ops):  # one member: H1^T, W2 (m, m), D2^T
        h1t, w2, d2t = ops
        return w2 @ h1t, w2.T @ d2t, d2t @ h1t.T

    spread = jax.jit(over_members(lambda ops: jax.lax.map(one, ops), mesh, 0))
    return lambda *ops: spread(ops)


def jax_matmul_runner(ops, layout: str) -> Callable[[int], object]:
    """``reps -> arrays``: the three big products, jitted, ``reps`` times.
    ``layout``: "row" or "col" (batched on one device), or "spread"."""
    h1, w2, d2 = ops
    if layout == "row":
        fn, args = _three_row, (h1, w2, d2)
    else:
        fn, args = _three_col, (h1.transpose(0, 2, 1), w2, d2.transpose(0, 2, 1))
    args = [jnp.asarray(np.ascontiguousarray(a)) for a in args]
    if layout == "spread":
        mesh = member_mesh(h1.shape[0])
        fn = _three_spread(mesh)
        args = place_members(tuple(args), mesh)

    def run(reps: int):
        out = None
        for _ in range(reps):
            out = fn(*args)
        return jax.block_until_ready(out)

    return run


def matmul_layouts(members: int) -> tuple[str, ...]:
    """The layouts the matmul ceiling is measured in (see ``jax_matmul_runner``)."""
    return ("row", "col") if member_mesh(members) is None else ("row", "col", "spread")


def matmul_ceiling(cs: dict) -> list[float]:
    """Per repeat, the fastest layout's time for the three products."""
    rows = [c.seconds_per_unit for k, c in cs.items() if k.startswith("matmuls_")]
    return [min(ts) for ts in zip(*rows)]


def numpy_matmul_runner(ops) -> Callable[[int], object]:
    h1, w2, d2 = ops
    w2t = np.ascontiguousarray(w2.transpose(0, 2, 1))
    d2t = np.ascontiguousarray(d2.transpose(0, 2, 1))

    def run(reps: int):
        for _ in range(reps):
            np.matmul(h1, w2t)
            np.matmul(d2, w2)
            np.matmul(d2t, h1)

    return run


def torch_matmul_runner(ops) -> Callable[[int], object]:
    h1, w2, d2 = (torch.from_numpy(o) for o in ops)

    def run(reps: int):
        for _ in range(reps):
            torch.matmul(h1, w2.transpose(1, 2))
            torch.matmul(d2, w2)
            torch.matmul(d2.transpose(1, 2), h1)

    return run


# --------------------------------------------------------------------------- timing


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


@dataclass
class Contender:
    """One timed thing: ``run(count)`` does ``count * units`` units of work."""

    name: str
    run: Callable[[int], object]
    units: int = 1  # work units per count (e.g. members per step)
    lo: int = 1
    hi: int = 10**6
    count: int = 0
    seconds_per_unit: list[float] = field(default_factory=list)

    def calibrate(self, target_s: float) -> None:
        """Pick ``count`` (>= ``lo``) so that one timed call takes about ``target_s``."""
        self.run(self.lo)  # compile / warm caches
        k = self.lo
        while True:
            t = timed(lambda: self.run(k))  # noqa: B023
            if t >= 0.2 * target_s or k >= self.hi:
                break
            k = min(self.hi, k * 4)
        self.count = int(min(self.hi, max(self.lo, round(k * target_s / max(t, 1e-9)))))

    def measure(self) -> None:
        t = timed(lambda: self.run(self.count))
        self.seconds_per_unit.append(t / (self.count * self.units))

    @property
    def median(self) -> float:
        return statistics.median(self.seconds_per_unit)


def interleave(contenders: list[Contender], repeats: int, log, tag: str) -> None:
    for r in range(repeats):
        for c in contenders:
            c.measure()
        log(f"[{tag}] repeat {r + 1}/{repeats}")


def med(xs) -> float:
    return float(statistics.median(xs))


def rng_(xs) -> list[float]:
    return [float(min(xs)), float(max(xs))]


# --------------------------------------------------------------------------- sections


def section_ratio(args, log) -> list[dict]:
    """A: network-steps/s of the trainer vs eager PyTorch at m = 100, 64 members."""
    m, members = 100, 64
    x, y, params = make_problem(m, members)
    torch_threads = None if torch is None else torch.get_num_threads()
    cases = []
    for dtype in args.dtypes:
        case = {"dtype": dtype, "m": m, "members": members, "torch_default_threads": torch_threads}
        trun = trainer_runner(x, y, params, dtype)
        cs = {"trainer": Contender("trainer", trun, members, lo=MIN_STEPS)}
        cs["vmapped"] = Contender("vmapped", vmapped_runner(x, y, params, dtype), members)
        cs["tracking"] = Contender(
            "tracking", trainer_runner(x, y, params, dtype, track=True), members, lo=MIN_STEPS
        )
        t0 = time.perf_counter()
        trun(1)
        case["compile_s"] = time.perf_counter() - t0
        if torch is not None:
            cs["torch"] = Contender("torch", torch_runner(x, y, params, dtype), members, hi=10**4)
            if torch_threads != 1:
                cs["torch_1thread"] = Contender(
                    "torch_1thread", torch_runner(x, y, params, dtype, threads=1), members, hi=10**4
                )
            case["max_abs_diff_trainer_vs_torch_5_steps"] = check_same_math(x, y, params, dtype)
            if dtype in args.compile_dtypes:  # the strongest alternative: torch.compile
                t0 = time.perf_counter()
                crun = torch_compile_runner(x, y, params, dtype)
                out = crun(5)
                case["torch_compile_first_call_s"] = time.perf_counter() - t0
                ref = trainer_runner(x, y, params, dtype)(5).snapshots
                case["max_abs_diff_trainer_vs_torch_compile_5_steps"] = max(
                    float(np.max(np.abs(ref[k][:, -1] - out[k].numpy()))) for k in range(3)
                )
                cs["torch_compile"] = Contender("torch_compile", crun, members, hi=10**4)
                if torch_threads != 1:
                    cs["torch_compile_1thread"] = Contender(
                        "torch_compile_1thread",
                        torch_compile_runner(x, y, params, dtype, threads=1),
                        members,
                        hi=10**4,
                    )
        ops = big_matmul_operands(m, members, dtype)
        for layout in matmul_layouts(members):
            cs[f"matmuls_{layout}"] = Contender(layout, jax_matmul_runner(ops, layout))
        for c in cs.values():
            c.calibrate(args.target_s if c.units > 1 else args.target_s / 2)
        case["counts"] = {k: c.count for k, c in cs.items()}
        log(f"[A {dtype}] compiled in {case['compile_s']:.1f} s; per timed call: {case['counts']}")
        interleave(list(cs.values()), args.repeats, log, f"A {dtype}")

        step = [u * members for u in cs["trainer"].seconds_per_unit]  # s per ensemble step
        ceiling = matmul_ceiling(cs)
        case["trainer_net_steps_per_s"] = 1 / cs["trainer"].median
        case["trainer_net_steps_per_s_range"] = sorted(
            1 / t for t in rng_(cs["trainer"].seconds_per_unit)
        )
        case["step_ms"] = 1e3 * med(step)
        case["matmuls_ms"] = 1e3 * med(ceiling)
        case["matmul_share"] = med([c / s for c, s in zip(ceiling, step)])
        case["trainer_matmul_gflops"] = matmul_flops(m, members) / med(step) / 1e9
        case["jax_matmul_gflops"] = matmul_flops(m, members) / med(ceiling) / 1e9
        case["raw_seconds_per_unit"] = {k: c.seconds_per_unit for k, c in cs.items()}
        case["vmapped_net_steps_per_s"] = 1 / cs["vmapped"].median
        case["speedup_vs_vmapped"] = med(
            [v / j for j, v in zip(cs["trainer"].seconds_per_unit, cs["vmapped"].seconds_per_unit)]
        )
        tracked = cs["tracking"].seconds_per_unit  # every watch on, as the CLI trains
        case["tracking_speedup_vs_vmapped"] = med(
            [v / j for j, v in zip(tracked, cs["vmapped"].seconds_per_unit)]
        )
        case["tracking_matmul_share"] = med([c / (u * members) for c, u in zip(ceiling, tracked)])
        if torch is not None:
            jt = cs["trainer"].seconds_per_unit
            best = list(cs["torch"].seconds_per_unit)
            for k in ("torch", "torch_1thread"):
                if k not in cs:
                    continue
                ts = cs[k].seconds_per_unit
                case[f"{k}_net_steps_per_s"] = 1 / cs[k].median
                case[f"ratio_vs_{k}"] = med([t / j for j, t in zip(jt, ts)])
                case[f"ratio_vs_{k}_range"] = rng_([t / j for j, t in zip(jt, ts)])
                best = [min(a, b) for a, b in zip(best, ts)]
            for k in ("torch_compile", "torch_compile_1thread"):
                if k in cs:  # the compiled contender, reported apart from the eager target
                    ts = cs[k].seconds_per_unit
                    case[f"{k}_net_steps_per_s"] = 1 / cs[k].median
                    case[f"ratio_vs_{k}"] = med([t / j for j, t in zip(jt, ts)])
                    case[f"ratio_vs_{k}_range"] = rng_([t / j for j, t in zip(jt, ts)])
            ratios = [t / j for j, t in zip(jt, best)]
            case["ratio"] = med(ratios)  # vs the faster torch setting of each repeat
            case["ratio_range"] = rng_(ratios)
            case["target"] = RATIO_TARGET
            case["met"] = case["ratio"] >= RATIO_TARGET
        cases.append(case)
    return cases


def section_fraction(args, log) -> list[dict]:
    """B: trainer step time vs its three big matmuls at m = 1000, float32."""
    m, dtype = 1000, "float32"
    cases = []
    for members in args.members:
        case = {"dtype": dtype, "m": m, "members": members}
        x, y, params = make_problem(m, members)
        trun = trainer_runner(x, y, params, dtype)
        cs = {"trainer": Contender("trainer", trun, lo=MIN_STEPS)}
        t0 = time.perf_counter()
        trun(1)
        case["compile_s"] = time.perf_counter() - t0
        ops = big_matmul_operands(m, members, dtype)
        for layout in matmul_layouts(members):
            cs[f"matmuls_{layout}"] = Contender(layout, jax_matmul_runner(ops, layout))
        cs["numpy"] = Contender("numpy", numpy_matmul_runner(ops))
        if torch is not None:
            cs["torch"] = Contender("torch", torch_matmul_runner(ops))
        for k, c in cs.items():
            c.calibrate(args.target_s if k == "trainer" else args.target_s / 2)
        case["counts"] = {k: c.count for k, c in cs.items()}
        log(
            f"[B E={members}] compiled in {case['compile_s']:.1f} s; "
            f"per timed call: {case['counts']}"
        )
        interleave(list(cs.values()), args.repeats, log, f"B E={members}")

        step = cs["trainer"].seconds_per_unit
        ceiling = matmul_ceiling(cs)
        fr = [c / s for c, s in zip(ceiling, step)]
        flops = matmul_flops(m, members)
        case["step_ms"] = 1e3 * med(step)
        case["matmuls_ms"] = 1e3 * med(ceiling)
        for layout in matmul_layouts(members):
            case[f"matmuls_{layout}_ms"] = 1e3 * cs[f"matmuls_{layout}"].median
        case["fraction"] = med(fr)
        case["fraction_range"] = rng_(fr)
        case["target"] = FRACTION_TARGET
        case["met"] = case["fraction"] >= FRACTION_TARGET
        case["trainer_gflops"] = flops / med(step) / 1e9  # the three products only
        case["jax_matmul_gflops"] = flops / med(ceiling) / 1e9
        case["numpy_matmul_gflops"] = flops / cs["numpy"].median / 1e9
        if torch is not None:
            case["torch_matmul_gflops"] = flops / cs["torch"].median / 1e9
        case["raw_seconds_per_unit"] = {k: c.seconds_per_unit for k, c in cs.items()}
        cases.append(case)
    return cases


# --------------------------------------------------------------------------- output


def environment() -> dict:
    env = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "jax_backend": jax.default_backend(),
        "numpy": np.__version__,
        "torch": None if torch is None else torch.__version__,
        "torch_threads": None if torch is None else torch.get_num_threads(),
        "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
    }
    if hasattr(os, "getloadavg"):
        env["loadavg_start"] = list(os.getloadavg())
    return env


def _fmt_rate(v: float) -> str:
    return f"{v:,.0f}"


def tables(ratio_cases, fraction_cases) -> list[tuple[str, list[str], list[list[str]]]]:
    out = []
    if ratio_cases:
        head = ["dtype", "trainer net-steps/s", "torch", "torch 1 thr", "ratio", "target"]
        head += ["torch.compile", "compile 1 thr"]
        head += ["step ms", "matmul share", "vs vmapped", "tracking: share", "vs vmapped"]
        rows = []
        for c in ratio_cases:
            lo, hi = c["trainer_net_steps_per_s_range"]
            row = [
                c["dtype"],
                f"{_fmt_rate(c['trainer_net_steps_per_s'])} ({_fmt_rate(lo)}-{_fmt_rate(hi)})",
            ]
            if "ratio" in c:
                t1 = c.get("torch_1thread_net_steps_per_s")
                rlo, rhi = c["ratio_range"]
                row += [
                    f"{_fmt_rate(c['torch_net_steps_per_s'])} ({c['ratio_vs_torch']:.1f}x)",
                    "-" if t1 is None else f"{_fmt_rate(t1)} ({c['ratio_vs_torch_1thread']:.1f}x)",
                    f"{c['ratio']:.1f}x ({rlo:.1f}-{rhi:.1f})",
                    f">={c['target']:.0f}x {'yes' if c['met'] else 'NO'}",
                ]
                for k in ("torch_compile", "torch_compile_1thread"):
                    v = c.get(f"{k}_net_steps_per_s")
                    row.append("-" if v is None else f"{_fmt_rate(v)} ({c[f'ratio_vs_{k}']:.1f}x)")
            else:
                row += ["not installed", "-", "-", "-", "-", "-"]
            row += [f"{c['step_ms']:.1f}", f"{100 * c['matmul_share']:.0f} %"]
            row += [f"{c['speedup_vs_vmapped']:.2f}x"]
            row += [f"{100 * c['tracking_matmul_share']:.0f} %"]
            row += [f"{c['tracking_speedup_vs_vmapped']:.2f}x"]
            rows.append(row)
        out.append(
            (
                "A. m=100, 64 members: net-steps/s, median (min-max); "
                "ratio = trainer / faster torch setting, per repeat",
                head,
                rows,
            )
        )
    if fraction_cases:
        head = ["members", "step ms", "3 matmuls ms", "fraction", "target"]
        head += ["trainer GF/s", "jax mm GF/s", "numpy GF/s", "torch GF/s"]
        rows = []
        for c in fraction_cases:
            flo, fhi = c["fraction_range"]
            rows.append(
                [
                    str(c["members"]),
                    f"{c['step_ms']:.2f}",
                    f"{c['matmuls_ms']:.2f}",
                    f"{100 * c['fraction']:.0f} % ({100 * flo:.0f}-{100 * fhi:.0f})",
                    f">={100 * c['target']:.0f} % {'yes' if c['met'] else 'NO'}",
                    f"{c['trainer_gflops']:.1f}",
                    f"{c['jax_matmul_gflops']:.1f}",
                    f"{c['numpy_matmul_gflops']:.1f}",
                    f"{c['torch_matmul_gflops']:.1f}" if "torch_matmul_gflops" in c else "-",
                ]
            )
        out.append(
            (
                "B. m=1000, float32: trainer step vs its three big matmuls alone, median (min-max)",
                head,
                rows,
            )
        )
    return out


def print_tables(ratio_cases, fraction_cases) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover - rich is a dependency of the package
        Console = Table = None
    for title, head, rows in tables(ratio_cases, fraction_cases):
        if Table is None:
            print(title)
            print(" | ".join(head))
            for r in rows:
                print(" | ".join(r))
            print()
            continue
        console = Console()
        if not console.is_terminal or console.width < 120:
            console = Console(width=140)
        t = Table(title=title, title_justify="left")
        for h in head:
            t.add_column(h, justify="right")
        for r in rows:
            t.add_row(*r)
        console.print(t)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer, shorter repeats (about 1 min)")
    p.add_argument("--repeats", type=int, help="interleaved repeats (default 5, quick 3)")
    p.add_argument(
        "--target-seconds",
        type=float,
        dest="target_s",
        help="wall time of one timed trainer call (default 0.8, quick 0.3)",
    )
    p.add_argument("--only", choices=["ratio", "fraction"], help="run one section only")
    p.add_argument(
        "--dtypes",
        nargs="+",
        default=["float64", "float32"],
        choices=["float64", "float32"],
        help="section A dtypes",
    )
    p.add_argument(
        "--members", nargs="+", type=int, default=[1, 4], help="section B ensemble sizes"
    )
    p.add_argument(
        "--compile-dtypes",
        nargs="*",
        default=["float32"],
        choices=["float64", "float32"],
        help="section A dtypes with the torch.compile contender (none: skip it)",
    )
    p.add_argument("--json", metavar="PATH", help="also write every number to this JSON file")
    args = p.parse_args(argv)
    args.repeats = args.repeats or (3 if args.quick else 5)
    args.target_s = args.target_s or (0.3 if args.quick else 0.8)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    env = environment()
    log(
        f"jax {env['jax']} ({env['jax_backend']}), {env['cpu_count']} CPUs, "
        f"torch {env['torch'] or 'NOT INSTALLED'}"
    )
    if torch is None:
        log(
            "torch is not installed: skipping the PyTorch comparisons, eager and "
            "torch.compile (pip install -e '.[bench]' to run them)"
        )
    t0 = time.perf_counter()
    ratio_cases = section_ratio(args, log) if args.only in (None, "ratio") else []
    fraction_cases = section_fraction(args, log) if args.only in (None, "fraction") else []
    env["wall_s"] = time.perf_counter() - t0
    if hasattr(os, "getloadavg"):
        env["loadavg_end"] = list(os.getloadavg())

    print_tables(ratio_cases, fraction_cases)
    load = env.get("loadavg_start")
    if load and load[0] > 0.5 * (os.cpu_count() or 1):
        log(
            f"note: load average {load[0]:.1f} on {os.cpu_count()} CPUs at start: other work "
            "shares the cores; absolute rates are depressed, ratios less so"
        )
    if args.json:
        out = {
            "environment": env,
            "args": vars(args),
            "ratio": ratio_cases,
            "fraction": fraction_cases,
        }
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
