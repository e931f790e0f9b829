"""Process-wide JAX settings, applied once when ``condensation`` is imported.

- ``jax_enable_x64``: the dynamics needs float64 (float32 stays selectable per run).
- CPU devices: XLA runs one program on one core, so a process normally uses one
  core for a training loop.  Before JAX starts its CPU backend, this exposes one
  JAX device per usable core (``jax_num_cpu_devices``), and
  :func:`condensation.train.train` spreads ensemble members over them.  The
  environment variable ``CONDENSATION_CPU_DEVICES`` sets the count instead
  (``1`` turns it off).  Nothing is changed when the backend has already
  started, or when ``XLA_FLAGS`` or ``jax_num_cpu_devices`` already set a count.
  A bad value changes nothing at import; ``PROBLEM`` keeps the error, which
  ``train`` raises and the CLI reports (exit status 2) before doing anything.
"""

from __future__ import annotations

import os

import jax

from condensation.errors import InputError

ENV_VAR = "CONDENSATION_CPU_DEVICES"
PROBLEM: InputError | None = None


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def cpu_device_count() -> int:
    """The count to ask for: ``$CONDENSATION_CPU_DEVICES``, else one per usable core."""
    raw = os.environ.get(ENV_VAR, "").strip()
    if not raw:
        return usable_cores()
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise InputError(
            ENV_VAR,
            raw,
            "not a whole number >= 1",
            "set it to how many JAX CPU devices to use (1 turns the spread off), or unset it",
        )
    return n


def _backend_started() -> bool:
    try:
        from jax._src import xla_bridge
    except ImportError:  # pragma: no cover - private module moved
        return True
    return bool(xla_bridge.backends_are_initialized())


def configure() -> None:
    global PROBLEM
    jax.config.update("jax_enable_x64", True)
    if (
        _backend_started()
        or "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "")
        or getattr(jax.config, "jax_num_cpu_devices", None) != -1  # set, or no such option
    ):
        return
    try:
        n = cpu_device_count()
    except InputError as e:
        PROBLEM = e
        return
    if n > 1:
        jax.config.update("jax_num_cpu_devices", n)
