"""The stored config records what the run used: a ``[data]`` key is kept exactly when
its data source reads it (changing it changes the data), and a run on ``data.path``
stores no teacher defaults."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from condensation.config.network import (
    BUILTIN_DATASETS,
    Config,
    DataConfig,
    data_keys_used,
)
from condensation.data import load_dataset

# a different valid value for each key
_OTHER = {"n": 37, "d": 3, "seed": 7, "noise": 0.25, "bias": True}
_SOURCES = [DataConfig(dataset=name) for name in BUILTIN_DATASETS]
_SOURCES += [dataclasses.replace(s, noise=0.1) for s in _SOURCES]


def _same(a: DataConfig, b: DataConfig) -> bool:
    x, y = load_dataset(a), load_dataset(b)
    return x.x.shape == y.x.shape and np.array_equal(x.x, y.x) and np.array_equal(x.y, y.y)


@pytest.mark.parametrize("src", _SOURCES, ids=lambda s: f"{s.dataset}-noise{s.noise}")
def test_a_data_key_is_recorded_exactly_when_it_changes_the_data(src):
    used = data_keys_used(src)
    for key, value in _OTHER.items():
        changed = dataclasses.replace(src, **{key: value})
        assert (key in used) == (not _same(src, changed)), (src.dataset, key)


def test_a_file_run_stores_its_path_not_teacher_defaults(tmp_path):
    f = tmp_path / "d.csv"
    np.savetxt(f, np.random.default_rng(0).standard_normal((20, 4)), delimiter=",")
    cfg = Config(data=DataConfig(path=str(f), n=100, d=5))
    data = cfg.to_dict()["data"]
    assert data == {"path": str(f), "bias": False}
    # a file run is the same run whatever the ignored keys say
    other = Config(data=DataConfig(path=str(f), n=7, d=2, seed=3, dataset="sin"))
    assert other.to_dict() == cfg.to_dict()
