"""What each axis of a sweep is in its figure, so that no axis is pooled silently.

For ``--plot X --y METRIC [--hue H]`` every axis of the sweep gets one role:

- ``X``: the horizontal axis; ``H``: the colour (one line per value);
- ``init.seed`` (when it is neither): the *replicates*: each point is the mean
  over the seeds, every member is drawn as a dot, and the figure says so;
- every other axis with more than one value: one *panel* per combination of
  the values of these axes, the panel's title naming them;
- an axis with a single value: named in the figure's heading.

Values are ordered by what they are, not as text: numbers numerically, lists of
numbers (``model.widths``) element by element, so ``[20, 20] < [50, 50] <
[200, 200]``; the table's JSON text of a list is read back for this.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from condensation.errors import InputError

REPLICATES = ("init.seed",)  # averaged over (and said) when not plotted
MAX_PANELS = 16  # panels of one figure (the product of the faceted axes' lengths)


def value_of(v: Any) -> Any:
    """A table cell back to its value: a list or table axis is stored as JSON text.

    >>> value_of("[8, 8]"), value_of("wine.csv"), value_of(0.1)
    ([8, 8], 'wine.csv', 0.1)
    """
    if isinstance(v, str) and v[:1] in "[{":
        try:
            return json.loads(v)
        except ValueError:
            return v
    return v


def order_key(v: Any) -> tuple:
    """Sort key of an axis value: numbers first (by value), then lists (element by
    element), then text; None last.

    >>> sorted(["[200, 200]", "[20, 20]", "[50, 50]"], key=order_key)
    ['[20, 20]', '[50, 50]', '[200, 200]']
    >>> sorted([1e-2, 1e-3, 3e-3], key=order_key)
    [0.001, 0.003, 0.01]
    """
    v = value_of(v)
    if v is None:
        return (3, 0.0)
    if isinstance(v, (bool, int, float)):
        f = float(v)
        return (0, -math.inf if math.isnan(f) else f)
    if isinstance(v, (list, tuple)):
        return (1, tuple(order_key(e) for e in v))
    if isinstance(v, dict):
        return (2, json.dumps(v, sort_keys=True))
    return (2, str(v))


def label(v: Any) -> str:
    """An axis value as the figure writes it (``0.001``, ``[8, 8]``, ``wine.csv``)."""
    v = value_of(v)
    if isinstance(v, float):
        return format(v, "g")
    if isinstance(v, (list, tuple, dict)):
        return json.dumps(v)
    return str(v)


def ordered(values) -> list:
    """The distinct values, in :func:`order_key` order."""
    seen: dict[str, Any] = {}
    for v in values:
        seen.setdefault(json.dumps(value_of(v), sort_keys=True, default=str), v)
    return sorted(seen.values(), key=order_key)


@dataclass(frozen=True)
class Layout:
    """The role of every axis in a sweep's figure (see the module doc)."""

    x: str
    y: str
    hue: str | None
    panels: tuple[str, ...]  # one panel per combination of these axes' values
    replicates: tuple[str, ...]  # averaged over at each point (named in the heading)
    fixed: tuple[tuple[str, Any], ...]  # axes with one value: (axis, value)

    def heading(self, n_values: dict[str, int]) -> list[str]:
        """The lines that say what the figure holds (``n_values``: values per axis)."""
        first = f"{self.y} over {self.x}"
        if self.hue:
            first += f"; colour: {self.hue}"
        if self.replicates:
            counts = ", ".join(f"{n_values[a]} {a}" for a in self.replicates)
            second = f"point: mean over {counts} (dots: members)"
        else:
            second = "point: one member (no replicate axis)"
        if self.panels:
            second += "; one panel per " + " x ".join(self.panels)
        lines = [first, second]
        if self.fixed:
            lines.append("fixed: " + ", ".join(f"{a} = {label(v)}" for a, v in self.fixed))
        return lines


def layout(axes: dict[str, list], x: str, y: str, hue: str | None = None) -> Layout:
    """The roles of a sweep's axes in the figure of ``y`` over ``x`` (colour ``hue``).

    Args:
        axes: every axis of the sweep and its distinct values, in the spec's order.
        x, y, hue: the ``--plot`` axis, the ``--y`` metric, the ``--hue`` axis.

    Returns:
        The :class:`Layout`.

    Raises:
        InputError: ``hue`` equals ``x``, or more than :data:`MAX_PANELS` panels.
    """
    if hue is not None and hue == x:
        raise InputError("--hue", hue, "is also the --plot axis", "colour by another axis")
    rest = [a for a in axes if a not in (x, hue)]
    varying = [a for a in rest if len(axes[a]) > 1]
    fixed = tuple((a, axes[a][0]) for a in rest if len(axes[a]) == 1)
    replicates = tuple(a for a in varying if a in REPLICATES)
    panels = tuple(a for a in varying if a not in REPLICATES)
    n = math.prod(len(axes[a]) for a in panels)
    if n > MAX_PANELS:
        shape = " x ".join(f"{len(axes[a])} {a}" for a in panels)
        raise InputError(
            "--plot",
            x,
            f"the axes not plotted give {n} panels ({shape}), above the limit of "
            f"{MAX_PANELS}",
            "colour one of them with --hue AXIS, or plot a spec with fewer values",
        )
    return Layout(x, y, hue, panels, replicates, fixed)


def check_log(option: str, axis: str, values: list) -> None:
    """Refuse a forced log axis (``--logx``) over values that are not all positive
    numbers, in one line naming the axis and the values."""
    nums = [value_of(v) for v in values]
    ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in nums)
    if not ok:
        raise InputError(
            option,
            axis,
            f"a log axis needs positive numbers, got {', '.join(label(v) for v in values)}",
            f"drop {option} (the axis is then chosen from the values)",
        )
