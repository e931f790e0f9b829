"""The public API: ``import condensation as C`` (issue 21 item 6)."""

import subprocess
import sys

import pytest

import condensation as C


def test_every_public_name_resolves_and_is_documented():
    assert len(set(C.__all__)) == len(C.__all__)
    assert set(C._LAZY) <= set(C.__all__)
    for name in C.__all__:
        obj = getattr(C, name)
        assert obj.__doc__ and obj.__doc__.strip(), name
    assert set(C.__all__) <= set(dir(C))


def test_no_public_name_is_hidden_by_a_submodule():
    """Importing a submodule sets it as an attribute of the package: a public name
    that were also a top-level module's name would turn into that module (C.reproduce
    did, once condensation's reproduce module was imported)."""
    import importlib
    import pkgutil

    modules = {m.name for m in pkgutil.iter_modules(C.__path__)}
    assert not modules & set(C.__all__), modules & set(C.__all__)
    for name in sorted(modules - {"__main__"}):
        importlib.import_module(f"condensation.{name}")
    for name in C.__all__:
        assert not isinstance(getattr(C, name), type(C)), name
    assert callable(C.reproduce) and callable(C.run_experiment)


def test_unknown_name_is_an_attribute_error():
    try:
        C.no_such_thing  # noqa: B018
    except AttributeError as e:
        assert "no_such_thing" in str(e)
    else:
        raise AssertionError("no AttributeError")


def test_import_stays_light():
    """``import condensation`` loads neither diffrax, Dask nor matplotlib: the heavy
    parts of the API are imported on first use."""
    code = (
        "import sys, condensation; "
        "print(sorted(m for m in ('diffrax', 'distributed', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_effective_dynamics_from_the_top_level_with_an_activation_name():
    cfg = C.load_config(None, ["model.widths=[6, 6]", "data.n=20", "data.d=3"])
    data, spec, ens = C.prepare(cfg)
    system = C.build_system([w[0] for w in ens.params], data.z, activation="tanh")
    same = C.build_system([w[0] for w in ens.params], data.z, activation=spec.activation)
    a, b = C.solve(system), C.solve(same)
    assert a.blew_up and a.T_star == b.T_star


@pytest.mark.parametrize("module", ["train", "effective", "matrix"])
def test_old_runs_paths_still_import_with_a_deprecation_warning(module):
    """The README once imported ``condensation.runs.train``: it keeps working for one
    release, warning where the code went."""
    import importlib
    import sys

    sys.modules.pop(f"condensation.runs.{module}", None)
    with pytest.warns(DeprecationWarning, match=f"condensation.commands.{module}"):
        old = importlib.import_module(f"condensation.runs.{module}")
    new = importlib.import_module(f"condensation.commands.{module}")
    public = [n for n in vars(new) if not n.startswith("_") and callable(getattr(new, n))]
    assert public and all(getattr(old, n) is getattr(new, n) for n in public)


def test_execute_is_the_cli_path_from_python(tmp_path):
    """``C.execute`` runs a validated config the way the CLI and a sweep cell do, and
    ``C.load_run`` reads back the same summary it returned."""
    cfg = C.load_config(None, ["model.widths=[4, 4]", "data.n=12", "data.d=2", "train.steps=30"])
    summary = C.execute("train", cfg, tmp_path / "run")
    run = C.load_run(tmp_path / "run")
    assert run.summary == summary
    assert run.config["train"]["steps"] == 30
