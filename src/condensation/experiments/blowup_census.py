"""``blowup-census``: how many initial conditions blow up, and how many the
sufficient criterion of THEORY §4 certifies (the necessity question of §7).

The three-layer effective dynamics ``a' = W c``, ``W' = a c^T``,
``c' = |z|^2 W^T a`` is homogeneous, so an initial condition's fate (blow-up or
equilibrium) does not depend on its overall scale: every family below is drawn
at scale one with ``|z| = 1``.  Each trajectory is solved through its blow-up
(or to its equilibrium) by the reduced form ``(a, W, c)`` (the spectral form does
not detect equilibria), in fixed-size batches of one compiled solve per width.
Families (width ``m = m1 = m2``):

- ``equal``: every entry of ``B, W, a`` i.i.d. N(0, 1);
- ``unequal``: layer k scaled by ``10^U(-1, 1)``, one draw per layer;
- ``near-balanced``: the exactly balanced rank-one point ``W = a beta^T``,
  ``B = |a| beta g^T`` (``a a^T = W W^T``, ``W^T W = B B^T``; ``g`` a random unit
  input direction, so ``E`` has either sign) plus N(0, ``balance_noise^2``);
- ``near-criterion``: ``a = W s`` with ``|s| = 1 + N(0, 0.1^2)``, which puts
  ``a a^T - W W^T`` at the edge of negative semidefinite (the criterion cannot
  certify when ``|s| <= 1``);
- ``near-line`` (scalar, ``m = 1``): ``(a, w, c) = (1, -1 + d, c)`` with
  ``d ~ N(0, 0.05^2)``, ``c ~ U(-3, 3)``, near the line ``a + w = 0`` of the
  non-blow-up example ``(1, -1, 2)``.

And the scalar map: blow-up vs equilibrium over ``(a0, w0)`` at ``c0 = c_slice``,
with the criterion's region ``|w| < min(|a|, |c|)`` drawn.  Derived here for
the scalar system (``|z| = 1``): ``(a + w)' = c (a + w)`` and
``(a - w)' = -c (a - w)``, so off the two lines ``a = ±w`` one of ``a ± w`` grows
and ``E = a w c`` turns positive; on ``a = -w`` with ``c0 > 0`` the flow goes to
an equilibrium when ``|a0| < c0`` (``c^2 - w^2`` is conserved and keeps ``c > 0``)
and blows up otherwise (for ``c0 < 0`` the same holds on ``a = w``).  So the
non-blow-up part of the slice is a segment of measure zero, and those
equilibria are unstable (a rounding error off the line grows like
``exp(c t)``), which is why the grid avoids the line.  Points placed exactly on
the line (the grid's a0 values) are solved as well, to show both outcomes: an
equilibrium is *held* when the solve reports one or blows up only after
``30 / |c0|`` (the time a rounding error needs to grow to O(1) there).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from condensation.effective.system import build_system
from condensation.effective.theory import CRITERION_BLOWS_UP, blowup_criterion
from condensation.errors import InputError
from condensation.experiments import Figure, Progress, require_counts
from condensation.experiments._batch import solve_chunked
from condensation.report import figures
from condensation.store.rundir import save_arrays

NAME = "blowup-census"
TITLE = "Blow-up census: how many trajectories blow up, how many the criterion certifies"
SECTION = "open-questions"
STORY = """
Is the paper's blow-up assumption necessary? Its checkable condition at t = 0
(THEORY §4: a a^T - W W^T not negative semidefinite and W^T W - c c^T/|z|^2 not
positive semidefinite) is sufficient for a finite-time blow-up of the three-layer
effective dynamics. Here hundreds of initial conditions, drawn from families
chosen to stress it (equal scales, unequal per-layer scales, near-balanced,
near the criterion's boundary, near the scalar non-blow-up line a + w = 0), are
each integrated through the blow-up or to an equilibrium, and counted: how many
blow up, how many the criterion certifies, and the gap between the two, which is
what a necessary condition would have to close. A certified trajectory that does
not blow up would contradict the theorem; the count of those is reported. The
scalar map shows the same on a slice (a0, w0) at fixed c0: every grid point blows
up, as derived, coloured by its blow-up time; the only equilibria of the slice lie
on a segment of measure zero, so points placed exactly on it are solved and shown
beside the map. These counts are evidence about the families drawn, not a proof
about all initial conditions.
"""

DEFAULTS = {
    "width": 6,
    "per_family": 60,  # trajectories per family (five families)
    "seed": 0,
    "d": 4,  # input dimension (|z| = 1)
    "balance_noise": 0.05,
    "grid": 25,  # scalar map: grid x grid points over (a0, w0) in [-2, 2]^2
    "c_slice": 1.0,
}
QUICK = {"per_family": 8, "grid": 7}
# data.* keys are refused in one line, saying why
NO_DATA = "draws its effective states at scale one with |z| = 1 (no data set)"
SECONDS = (6, 19)  # quick: CPU s cold, one device (bench_reproduce 2026-12-05); default: earlier

FAMILIES = ("equal", "unequal", "near-balanced", "near-criterion", "near-line")

FIGURES = (
    Figure(
        "figures/census.png",
        "Per family: trajectories that blow up (blue), that the criterion certifies "
        "(orange), and that blow up without being certified (grey: the gap).",
        (
            "n_trajectories",
            "n_blow_up",
            "n_certified",
            "n_blow_up_not_certified",
            "n_certified_not_blow_up",
            "n_unresolved",
        ),
    ),
    Figure(
        "figures/scalar_map.png",
        "Scalar system (|z| = 1) at c0 = c_slice. Left: colour = log10 of the blow-up time "
        "T* over the (a0, w0) grid (a cell without a blow-up would be red; none is "
        "expected: derived, off the lines a0 = +-w0 one of a0 +- w0 grows and the flow "
        "blows up); hatched, orange outline: the criterion's region |w0| < "
        "min(|a0|, |c0|); dotted: a0 = w0. Markers: initial points placed exactly on the "
        "line a0 = -w0 (a0 = w0 for c0 < 0) and solved: circles reached an equilibrium, "
        "crosses blew up. The derivation puts the equilibria there and only there, at "
        "|a0| < |c0|, a set of measure zero, which is why no grid cell shows one. Those "
        "equilibria are unstable: a rounding error off the line grows like exp(c t), so a "
        "solve that stays near one until T* > 30/|c0| (red dotted line, right; a 1e-16 "
        "error needs about that long to reach O(1)) and only then blows up, counts as an "
        "equilibrium held (circle), as does a solve that reports an equilibrium. Right: T* "
        "along that line against a0: circles inside |a0| < |c0| (dashed), crosses outside, "
        "if the solves agree with the derivation (map_line_n_as_derived of "
        "map_line_n_points).",
        ("map_fraction_blow_up", "map_fraction_certified", "map_n_blow_up_not_certified",
         "map_line_n_points", "map_line_n_held", "map_line_n_as_derived"),
    ),
)


def _unit(v):
    return v / np.linalg.norm(v)


def family_states(name: str, n: int, m: int, d: int, rng, noise: float):
    """``n`` initial states ``(B (m1, d), W (m2, m1), a (1, m2))`` of one family;
    the scalar family ``near-line`` has ``m = d = 1``."""
    out = []
    for _ in range(n):
        if name == "near-line":
            c = rng.uniform(-3.0, 3.0)
            c = c if abs(c) > 1e-3 else 1e-3
            out.append((np.array([[c]]), np.array([[-1.0 + 0.05 * rng.standard_normal()]]),
                        np.array([[1.0]])))  # fmt: skip
            continue
        b, w, a = rng.standard_normal((m, d)), rng.standard_normal((m, m)), rng.standard_normal(m)
        if name == "unequal":
            sb, sw, sa = 10.0 ** rng.uniform(-1, 1, 3)
            b, w, a = sb * b, sw * w, sa * a
        elif name == "near-balanced":
            beta, g = _unit(rng.standard_normal(m)), _unit(rng.standard_normal(d))
            w = np.outer(a, beta) + noise * rng.standard_normal((m, m))
            b = np.linalg.norm(a) * np.outer(beta, g) + noise * rng.standard_normal((m, d))
            a = a + noise * rng.standard_normal(m)
        elif name == "near-criterion":
            s = _unit(rng.standard_normal(m)) * (1.0 + 0.1 * rng.standard_normal())
            a = w @ s
        out.append((b, w, a[None, :]))
    return out


def pad_scalar(state, m: int, d: int):
    """A scalar state ``(c, w, a)`` as a width-``m`` network with input dimension ``d``
    and ``z = e_1``: neuron 1 carries it, the others are zero (an exact invariant
    subspace, left out of every per-neuron diagnostic), so scalar systems share
    the width-m compiled solve."""
    (c,), (w,), (a,) = (np.ravel(x) for x in state)
    b, wm, am = np.zeros((m, d)), np.zeros((m, m)), np.zeros((1, m))
    b[0, 0], wm[0, 0], am[0, 0] = c, w, a
    return b, wm, am


def _solve(states, z):
    """(status list, criterion-certified bool array, T* array: NaN without a blow-up)
    of states, in fixed-size batches."""
    systems = [build_system(list(s), z, form="reduced") for s in states]
    sols = solve_chunked(systems)
    cert = np.array(
        [blowup_criterion(s[2][0], s[1], s[0] @ z, float(np.linalg.norm(z))) == CRITERION_BLOWS_UP
         for s in states]
    )  # fmt: skip
    t_star = np.array([s.T_star if s.status == "blow-up" else np.nan for s in sols])
    return [s.status for s in sols], cert, t_star


def _check(p: dict) -> None:
    require_counts(p, ("width", "per_family", "d", "grid"))
    if p["c_slice"] == 0:
        raise InputError("c_slice", 0, "c0 = 0 is not driven", "give a nonzero c_slice")
    if not p["balance_noise"] >= 0:
        raise InputError("balance_noise", p["balance_noise"], "must be >= 0", "give noise >= 0")


def run(params: dict, out_dir: Path, progress: Progress) -> dict:
    p = params
    _check(p)
    rng = np.random.default_rng(p["seed"])
    z = np.zeros(p["d"])
    z[0] = 1.0
    states = {f: family_states(f, p["per_family"], p["width"], p["d"], rng, p["balance_noise"])
              for f in FAMILIES}  # fmt: skip
    # scalar systems (the near-line family and the map) are zero-padded to width m
    wide = [s for f in FAMILIES[:-1] for s in states[f]]
    progress("width-m families", 0, 2)
    st_wide, cert_wide, _ = _solve(wide, z)
    # shifted by a third of a cell, so that no grid point lies exactly on a0 + w0 = 0:
    # the non-blow-up points there are unstable equilibria, numerically ambiguous
    g = np.linspace(-2.0, 2.0, p["grid"]) + 4.0 / (3.0 * max(p["grid"] - 1, 1))
    aa, ww = np.meshgrid(g, g, indexing="xy")  # rows: w0, columns: a0
    grid_states = [(np.array([[p["c_slice"]]]), np.array([[w]]), np.array([[a]]))
                   for a, w in zip(aa.ravel(), ww.ravel())]  # fmt: skip
    progress("scalar systems", 1, 2)
    # initial points exactly on the line a0 = -sign(c0) w0, where the derivation puts
    # both outcomes: an equilibrium for |a0| < |c0|, a blow-up beyond
    sgn = -1.0 if p["c_slice"] > 0 else 1.0
    line_states = [(np.array([[p["c_slice"]]]), np.array([[sgn * a]]), np.array([[a]]))
                   for a in g]  # fmt: skip
    m, d = p["width"], p["d"]
    scalars = [pad_scalar(s, m, d) for s in states["near-line"] + grid_states + line_states]
    st_small, cert_small, t_small = _solve(scalars, z)
    n_grid = len(grid_states)
    progress("scalar systems", 2, 2)
    n_line = len(states["near-line"])
    statuses = {**{f: st_wide[i * p["per_family"]:(i + 1) * p["per_family"]]
                   for i, f in enumerate(FAMILIES[:-1])}, "near-line": st_small[:n_line]}
    certs = {**{f: cert_wide[i * p["per_family"]:(i + 1) * p["per_family"]]
                for i, f in enumerate(FAMILIES[:-1])},
             "near-line": cert_small[:n_line]}  # fmt: skip
    head: dict = {"width": p["width"], "per_family": p["per_family"]}
    table = []
    for f in FAMILIES:
        blew = np.array([s == "blow-up" for s in statuses[f]])
        eq = np.array([s == "equilibrium" for s in statuses[f]])
        cert = certs[f]
        key = f.replace("-", "_")
        row = {
            "n": len(blew), "n_blow_up": int(blew.sum()), "n_equilibrium": int(eq.sum()),
            "n_unresolved": int((~blew & ~eq).sum()), "n_certified": int(cert.sum()),
            "n_blow_up_not_certified": int((blew & ~cert).sum()),
            "n_certified_not_blow_up": int((cert & ~blew).sum()),
        }  # fmt: skip
        table.append(row)
        for k, v in row.items():
            head[f"{key}_{k}"] = v
        head[f"{key}_fraction_blow_up"] = row["n_blow_up"] / row["n"]
        head[f"{key}_fraction_certified"] = row["n_certified"] / row["n"]
    for k in ("n", "n_blow_up", "n_certified", "n_blow_up_not_certified",
              "n_certified_not_blow_up", "n_unresolved"):  # fmt: skip
        head["n_trajectories" if k == "n" else k] = int(sum(r[k] for r in table))
    map_st = st_small[n_line : n_line + n_grid]
    map_blew = np.array([s == "blow-up" for s in map_st]).reshape(aa.shape)
    map_cert = cert_small[n_line : n_line + n_grid].reshape(aa.shape)
    map_t = t_small[n_line : n_line + n_grid].reshape(aa.shape)
    line_st = st_small[n_line + n_grid :]
    line_t = np.where([s == "equilibrium" for s in line_st], np.inf, t_small[n_line + n_grid :])
    derived_eq = np.abs(g) < abs(p["c_slice"])
    held = held_equilibrium(line_t, p["c_slice"])
    head["map_line_n_points"] = len(line_st)
    head["map_line_n_equilibrium"] = int(sum(s == "equilibrium" for s in line_st))
    head["map_line_n_held"] = int(held.sum())  # equilibrium, or left only through rounding
    head["map_line_n_as_derived"] = int(np.sum(held == derived_eq))
    head["map_fraction_blow_up"] = float(map_blew.mean())
    head["map_fraction_certified"] = float(map_cert.mean())
    head["map_n_blow_up_not_certified"] = int((map_blew & ~map_cert).sum())
    head["map_n_certified_not_blow_up"] = int((map_cert & ~map_blew).sum())
    save_arrays(
        out_dir / "arrays" / "census.npz", families=np.array(FAMILIES),
        counts=np.array([[r[k] for k in table[0]] for r in table]),
        count_names=np.array(list(table[0])), map_a0=g, map_w0=g,
        map_blow_up=map_blew, map_certified=map_cert, c_slice=np.float64(p["c_slice"]),
        map_T_star=map_t, line_a0=g, line_T_star=line_t,  # inf: an equilibrium
        line_status=np.array(line_st),
    )  # fmt: skip
    plot_census(out_dir / "figures" / "census.png", table)
    plot_map(out_dir / "figures" / "scalar_map.png", g, map_blew, map_cert, p["c_slice"],
             map_t, g, line_t)  # fmt: skip
    return head


def plot_census(path, table) -> None:
    fig, ax = figures.subplots(figsize=(figures.FIG_WIDTH, 3.8))
    x = np.arange(len(FAMILIES))
    for off, key, color, label in ((-0.27, "n_blow_up", "C0", "blow up"),
                                   (0.0, "n_certified", "C1", "certified"),
                                   (0.27, "n_blow_up_not_certified", "0.5", "gap")):  # fmt: skip
        vals = [r[key] for r in table]
        ax.bar(x + off, vals, 0.27, color=color, label=label)
        for xi, v in zip(x + off, vals):
            ax.text(xi, v, str(v), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, [f"{f}\n(n={r['n']})" for f, r in zip(FAMILIES, table)])
    ax.set_ylabel("trajectories")
    ax.set_ylim(0, 1.18 * max(max(r["n"] for r in table), 1))
    ax.legend(loc="upper center", ncol=3, frameon=False)
    figures.save(fig, path)


ROUNDING_LOG = 30.0  # ln of the growth that turns a rounding error (~1e-16) into O(1)


def held_equilibrium(line_t, c0) -> np.ndarray:
    """Points of the non-blow-up line whose solve held the derived equilibrium: an
    equilibrium (``line_t`` inf), or a blow-up only after ``ROUNDING_LOG / |c0|``, the
    time a rounding error needs to grow to O(1) at the equilibrium's rate (at most
    ``|c0|``): that equilibrium is unstable, and floating point leaves it."""
    t = np.asarray(line_t, float)
    return ~np.isfinite(t) | (t > ROUNDING_LOG / abs(c0))


def plot_map(path, g, blew, cert, c0, t_star, a_line, line_t) -> None:
    """Left: log10 T* over the (a0, w0) grid (a colour bar; a cell without a blow-up
    would show as a red square), the criterion's region
    hatched, and the points solved exactly on the derived non-blow-up line (circles:
    equilibrium held, see :func:`held_equilibrium`; crosses: blow-up).  Right: T*
    along that line against a0."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    fig, axs = figures.subplots(
        1, 2, figsize=(figures.FIG_WIDTH, 4.6), gridspec_kw={"width_ratios": [1.25, 1]}
    )
    ax = axs[0]
    ext = (g[0] - (g[1] - g[0]) / 2, g[-1] + (g[1] - g[0]) / 2) * 2 if g.size > 1 else None
    logt = np.log10(np.where(blew, t_star, np.nan))
    im = ax.imshow(logt, origin="lower", extent=ext, cmap="viridis", aspect="auto")
    fig.colorbar(im, ax=ax, label="log10 T* (blow-up time)")
    other = np.where(blew, np.nan, 1.0)  # cells without a blow-up
    if np.isfinite(other).any():
        ax.imshow(other, origin="lower", extent=ext, cmap=ListedColormap(["tab:red"]),
                  aspect="auto")  # fmt: skip
    ax.contourf(g, g, cert.astype(float), levels=[0.5, 1.5], colors="none", hatches=["///"])
    ax.contour(g, g, cert.astype(float), levels=[0.5], colors="C1", linewidths=1)
    ax.plot(g, g, "k:", lw=0.8)
    sgn = -1.0 if c0 > 0 else 1.0
    held = held_equilibrium(line_t, c0)
    ax.plot(a_line[held], sgn * a_line[held], "o", mfc="w", mec="k", ms=7, ls="none")
    ax.plot(a_line[~held], sgn * a_line[~held], "X", mfc="w", mec="k", ms=8, ls="none")
    ax.set_xlabel("a0")
    ax.set_ylabel("w0")
    n_other = int((~blew).sum())
    ax.set_title(f"c0 = {c0:g}: {blew.sum()} of {blew.size} grid cells blow up")
    handles = [
        Patch(facecolor="none", edgecolor="C1", hatch="///", label="criterion certifies"),
        Patch(color="tab:red", label=f"no blow-up ({n_other} cells)"),
        *ax.lines[1:],
    ]
    handles[2].set_label(f"on a0 = {'-' if sgn < 0 else ''}w0: equilibrium held")
    handles[3].set_label("on the line: blow-up")
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2,
              frameon=False)  # fmt: skip
    ax = axs[1]
    fin = np.isfinite(line_t)
    top = np.nanmax(line_t[fin]) * 3 if fin.any() else 10.0 * ROUNDING_LOG / abs(c0)
    shown = np.where(fin, line_t, top)  # an equilibrium (no T*) at the top
    ax.semilogy(a_line[~held], shown[~held], "X", mfc="w", mec="k", ms=8, ls="none",
                label="blow-up: T*")  # fmt: skip
    ax.semilogy(a_line[held], shown[held], "o", mfc="w", mec="k", ms=7, ls="none",
                label="equilibrium held (top: no blow-up)")  # fmt: skip
    ax.axhline(ROUNDING_LOG / abs(c0), color="C3", ls=":", lw=1)
    for s in (-1, 1):
        ax.axvline(s * abs(c0), color="0.4", ls="--", lw=0.8)
    ax.set_xlabel(f"a0 on the line w0 = {'-' if sgn < 0 else ''}a0 (dashed: |a0| = |c0|)")
    ax.set_ylabel("blow-up time T* (dotted: 30/|c0|)")
    ax.set_title("derived: equilibrium iff |a0| < |c0|")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    figures.save(fig, path)


__all__ = ["family_states"]
