import os

# Every test run exposes two JAX CPU devices (whatever the core count), so the
# trainer's spread of ensemble members over devices is always exercised.
os.environ.setdefault("CONDENSATION_CPU_DEVICES", "2")
# Tests never write into the user's persistent compilation cache (test_jax_setup.py
# turns it on in a temporary directory to check that a second process reuses it).
os.environ["CONDENSATION_JAX_CACHE"] = "off"

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_enable_x64", True)

# One fixed default seed, overridable: CONDENSATION_TEST_SEED=17 pytest
SEED = int(os.environ.get("CONDENSATION_TEST_SEED", "0"))


@pytest.fixture
def spread_always(monkeypatch):
    """Trainers spread members over the devices however small the job."""
    from condensation.training import devices

    monkeypatch.setattr(devices, "SPREAD_MIN_FLOPS", 0.0)


@pytest.fixture
def rng():
    return np.random.default_rng(SEED)


def _first_gd_step(params, x, y, act, lr, steps, stop):
    """Reference GD, one uncompiled-loop step at a time with ``jax.grad`` of the core
    loss: the first ``k <= steps`` at which ``stop(params_k, loss_k, loss_0)``, else -1."""
    import jax

    from condensation.core import loss

    value_and_grad = jax.jit(jax.value_and_grad(loss), static_argnums=3)
    params, l0 = tuple(params), None
    for k in range(steps + 1):
        lk, gk = value_and_grad(params, x, y, act)
        l0 = lk if l0 is None else l0
        if stop(params, lk, l0):
            return k
        params = tuple(p - lr * q for p, q in zip(params, gk))
    return -1


def _network_setup(overrides):
    """``(cfg, data, spec, ensemble)`` of the built-in config with ``overrides``."""
    from condensation import load_config, load_dataset
    from condensation.models import NetworkSpec, init_ensemble

    cfg = load_config(None, overrides)
    data = load_dataset(cfg.data)
    spec = NetworkSpec.from_config(cfg.model, data.d_in)
    return cfg, data, spec, init_ensemble(cfg, spec)


@pytest.fixture
def network_setup():
    """``setup(overrides) -> (cfg, data, spec, ensemble)``."""
    return _network_setup


@pytest.fixture
def trained_and_reference():
    """``run(overrides, steps, lr, stop) -> (TrainResult, k)``: the compiled trainer
    on the ensemble of ``overrides`` (snapshots at the two ends only, so anything
    it reports was found inside the loop) and the brute-force reference on member
    0, ``k`` its first step with ``stop(params_k, loss_k, loss_0, data)``."""
    from condensation import train

    def run(overrides, steps, lr, stop):
        _, data, spec, ens = _network_setup(overrides)
        act = spec.activation.fn
        kw = dict(act=act, lr=lr, steps=steps, snapshots=np.array([0, steps]))
        r = train(ens.params, data.x, data.y, **kw)
        k = _first_gd_step(
            [p[0] for p in ens.params],
            data.x,
            data.y,
            act,
            lr,
            steps,
            lambda params, lk, l0: stop(params, lk, l0, data),
        )
        return r, k

    return run


@pytest.fixture
def cli_streams(monkeypatch, capsys):
    """Run the CLI in-process (no interpreter start-up):
    ``(*args) -> (exit status, stdout, stderr)``."""
    import sys

    from condensation.cli import main

    def run(*args):
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["condensation", *args])
        try:
            main()
            code = 0
        except SystemExit as e:
            code = e.code
        got = capsys.readouterr()
        return code, got.out, got.err

    return run


@pytest.fixture
def cli_main(cli_streams):
    """Run the CLI in-process (no interpreter start-up): ``(*args) -> (exit status, stderr)``."""

    def run(*args):
        code, _, err = cli_streams(*args)
        return code, err

    return run


@pytest.fixture
def cli_subprocess():
    """Run the CLI as a user would, in a fresh interpreter:
    ``(*args, env={extra variables}) -> CompletedProcess``."""
    import subprocess
    import sys

    def run(*args, env=None):
        return subprocess.run(
            [sys.executable, "-m", "condensation", *args],
            capture_output=True,
            text=True,
            env=None if env is None else {**os.environ, **env},
        )

    return run
