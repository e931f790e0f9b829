"""The persistent compilation cache: where it lives, how it is switched off, and that
a second process loads what the first one compiled."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from condensation import jax_setup as S

# compiles one small program; prints the cache directory in use and the cache hits
PROBE = """
import json
from jax import monitoring
hits = []
monitoring.register_event_listener(lambda e, **kw: hits.append(e))
import jax, jax.numpy as jnp
import condensation
y = jax.jit(lambda x: jnp.tanh(x) @ x.T + 1.0)(jnp.ones((7, 3)))
print(json.dumps({"dir": jax.config.jax_compilation_cache_dir,
                  "hits": hits.count("/jax/compilation_cache/cache_hits"), "y": float(y.sum())}))
"""


def _probe(env_value: str) -> dict:
    env = {**os.environ, S.CACHE_ENV_VAR: env_value, "CONDENSATION_CPU_DEVICES": "1"}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    p = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_second_process_reuses_the_cache(tmp_path):
    cache = tmp_path / "jax-cache"
    first = _probe(str(cache))
    assert first["dir"] == str(cache) and first["hits"] == 0
    entries = sorted(p.name for p in cache.iterdir())
    assert entries, "the first process wrote nothing into the cache"
    second = _probe(str(cache))
    assert second["hits"] >= 1 and second["y"] == first["y"]
    assert sorted(p.name for p in cache.iterdir()) == entries  # nothing compiled anew


@pytest.mark.parametrize("raw", ["off", "OFF", "0", "none", " false "])
def test_switched_off(monkeypatch, raw):
    monkeypatch.setenv(S.CACHE_ENV_VAR, raw)
    assert S.compile_cache_dir() is None


def test_directory_from_env_and_default(monkeypatch, tmp_path):
    monkeypatch.setenv(S.CACHE_ENV_VAR, str(tmp_path / "c"))
    assert S.compile_cache_dir() == tmp_path / "c"
    monkeypatch.delenv(S.CACHE_ENV_VAR)
    if sys.platform.startswith("linux"):
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        assert S.compile_cache_dir() == tmp_path / "xdg" / "condensation" / "jax"
        monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")  # XDG: only absolute paths
        assert S.compile_cache_dir() == Path.home() / ".cache" / "condensation" / "jax"
    assert S.compile_cache_dir().parts[-2:] == ("condensation", "jax")


def test_the_test_suite_writes_no_user_cache():
    import jax

    assert os.environ[S.CACHE_ENV_VAR] == "off"
    assert jax.config.jax_compilation_cache_dir is None


def test_unwritable_directory_leaves_the_cache_off(monkeypatch, tmp_path):
    import jax

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv(S.CACHE_ENV_VAR, str(blocker / "cache"))
    assert S.configure_compile_cache() is None
    assert jax.config.jax_compilation_cache_dir is None


def test_trim_cache_deletes_oldest_entries_down_to_the_target(tmp_path):
    """Over the limit, whole entries (-cache and -atime together) go, oldest first,
    until at most ``to_bytes`` remain; under it nothing is touched."""
    import os

    from condensation.jax_setup import trim_cache

    for i in range(10):  # entry i: 100 + 8 bytes, modified at time 1000 + i
        for suffix, n in (("cache", 100), ("atime", 8)):
            f = tmp_path / f"jit_f-{i:04d}-{suffix}"
            f.write_bytes(b"x" * n)
            os.utime(f, (1000 + i, 1000 + i))
    (tmp_path / ".lockfile").write_bytes(b"")
    old = tmp_path / "notes.txt"  # not JAX's: never counted, never deleted
    old.write_bytes(b"y" * 5000)
    os.utime(old, (1, 1))
    assert trim_cache(tmp_path, max_bytes=2000, to_bytes=500) == 0  # 1080 <= 2000
    assert trim_cache(tmp_path, max_bytes=1000, to_bytes=500) == 6 * 108
    left = sorted(p.name for p in tmp_path.iterdir())
    kept = [f"jit_f-{i:04d}-{s}" for i in range(6, 10) for s in ("atime", "cache")]
    assert left == [".lockfile", *kept, "notes.txt"]
