"""Real data sets bundled with the package (small ``.npz`` files: ``x`` (n, d), ``y`` (n,)).

``diabetes.npz``: the diabetes regression data of Efron, Hastie, Johnstone and
Tibshirani, "Least Angle Regression", Annals of Statistics 32(2), 2004: 442
patients, 10 baseline variables (age, sex, body-mass index, average blood
pressure, six blood serum measurements), target a measure of disease
progression one year later.  Obtained once through scikit-learn 1.9.1's
``load_diabetes(return_X_y=True, scaled=False)`` (scikit-learn is not a
dependency) and standardised here: every column of ``x`` and ``y`` has mean 0
and standard deviation 1 (population std, ``ddof=0``).  Use it as
``[data] dataset = "diabetes"`` or give the file itself as ``data.path``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

BUNDLED = ("diabetes",)
TEACHERS = ("teacher", "teacher3")  # generated: x ~ U[-1, 1]^d; they read n, d and seed


def bundled_path(name: str) -> Path:
    """Path of the bundled ``name.npz`` (``name`` one of :data:`BUNDLED`)."""
    return Path(str(resources.files(__name__).joinpath(f"{name}.npz")))
