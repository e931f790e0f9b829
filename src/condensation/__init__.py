"""condensation: training dynamics of neural networks from small initialisation.

Implements the system of Chen & Luo, "On the dynamics of three-layer neural
networks: initial condensation" (arXiv 2402.15958): fast ensemble training,
the effective dynamics and its finite-time blow-up, and the measurements of
condensation.  Importing the package turns on JAX's float64 support
(``jax_enable_x64``), which the dynamics needs (float32 stays selectable per
run), and, unless JAX has already started, exposes one JAX CPU device per core
so that ensembles train on all cores (see :mod:`condensation._jax_setup`).
"""

from _condensation_entry import install_for_python_m as _install_for_python_m

# ``python -m condensation`` runs this file first: its signal handler goes in before
# JAX is imported (see _condensation_entry).  ``import condensation`` installs nothing.
_install_for_python_m()

from condensation._jax_setup import configure as _configure  # noqa: E402

_configure()

from condensation.config import Config, load_config  # noqa: E402
from condensation.data import Dataset, load_dataset  # noqa: E402
from condensation.errors import InputError, NumericalError  # noqa: E402
from condensation.loading import Run, load_run  # noqa: E402
from condensation.models import NetworkSpec, init_ensemble  # noqa: E402
from condensation.train import TrainResult, train  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "Config",
    "Dataset",
    "InputError",
    "NetworkSpec",
    "NumericalError",
    "Run",
    "TrainResult",
    "init_ensemble",
    "load_config",
    "load_dataset",
    "load_run",
    "train",
]
