"""Sweeps: the product of config axes as cells on the engine, one results table."""

from condensation.sweep.load import Sweep, load_sweep
from condensation.sweep.plot import SweepPlot, plot_sweep, sweep_figure
from condensation.sweep.run import run_sweep
from condensation.sweep.spec import Cell, Spec, cell_id, parse_spec

__all__ = [
    "Cell",
    "Spec",
    "Sweep",
    "SweepPlot",
    "cell_id",
    "load_sweep",
    "parse_spec",
    "plot_sweep",
    "run_sweep",
    "sweep_figure",
]
