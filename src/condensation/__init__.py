"""condensation: training dynamics of neural networks from small initialisation.

Implements the system of Chen & Luo, "On the dynamics of three-layer neural
networks: initial condensation" (arXiv 2402.15958): fast ensemble training,
the effective dynamics and its finite-time blow-up, and the measurements of
condensation.  Importing the package turns on JAX's float64 support
(``jax_enable_x64``), which the dynamics needs (float32 stays selectable per
run), and, unless JAX has already started, exposes one JAX CPU device per core
so that ensembles train on all cores (see :mod:`condensation.jax_setup`).
"""

from _condensation_entry import install_for_python_m as _install_for_python_m

# ``python -m condensation`` runs this file first: its signal handler goes in before
# JAX is imported (see _condensation_entry).  ``import condensation`` installs nothing.
_install_for_python_m()

from condensation.jax_setup import configure as _configure  # noqa: E402

_configure()

from condensation.config.network import Config, load_config  # noqa: E402
from condensation.data import Dataset, load_dataset  # noqa: E402
from condensation.errors import InputError, NumericalError  # noqa: E402
from condensation.models import NetworkSpec, init_ensemble  # noqa: E402
from condensation.store.load_run import Run, load_run  # noqa: E402
from condensation.training.network import TrainResult, train  # noqa: E402

__version__ = "0.1.0"

# The rest of the public API is imported on first use (PEP 562), so that
# ``import condensation`` stays light (no diffrax, Dask or matplotlib until needed):
# name -> the module that defines it.
_LAZY = {
    "get_activation": "condensation.core.activations",
    "Prepared": "condensation.commands.prepare",
    "prepare": "condensation.commands.prepare",
    "prepare_run": "condensation.commands.prepare",
    "execute": "condensation.commands.registry",
    "run_training": "condensation.commands.train",
    "build_system": "condensation.effective.system",
    "solve": "condensation.effective.system",
    "trajectory": "condensation.effective.system",
    "run_effective": "condensation.commands.effective",
    "load_matrix_config": "condensation.config.matrix",
    "run_matrix": "condensation.commands.matrix",
    "parse_spec": "condensation.sweep",
    "run_sweep": "condensation.sweep",
    "load_sweep": "condensation.sweep",
    "Sweep": "condensation.sweep",
    "run_experiment": "condensation.reproduction",
    "reproduce": "condensation.reproduction",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'condensation' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


# every public name, those imported above and the lazy ones (_LAZY)
__all__ = [
    "Config",
    "Dataset",
    "InputError",
    "NetworkSpec",
    "NumericalError",
    "Prepared",
    "Run",
    "Sweep",
    "TrainResult",
    "build_system",
    "execute",
    "get_activation",
    "init_ensemble",
    "load_config",
    "load_dataset",
    "load_matrix_config",
    "load_run",
    "load_sweep",
    "parse_spec",
    "prepare",
    "prepare_run",
    "reproduce",
    "run_effective",
    "run_experiment",
    "run_matrix",
    "run_sweep",
    "run_training",
    "solve",
    "train",
    "trajectory",
]
