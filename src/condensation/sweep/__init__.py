"""Sweeps: the product of config axes as cells on the engine, one results table."""

from condensation.sweep.plot import plot_sweep
from condensation.sweep.run import run_sweep
from condensation.sweep.spec import Cell, Spec, cell_id, parse_spec

__all__ = ["Cell", "Spec", "cell_id", "parse_spec", "plot_sweep", "run_sweep"]
