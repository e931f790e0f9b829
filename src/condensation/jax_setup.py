"""Process-wide JAX settings, applied once when ``condensation`` is imported.

- ``jax_enable_x64``: the dynamics needs float64 (float32 stays selectable per run).
- CPU devices: XLA runs one program on one core, so a process normally uses one
  core for a training loop.  Before JAX starts its CPU backend, this exposes one
  JAX device per usable core (``jax_num_cpu_devices``), and
  :func:`condensation.training.network.train` spreads ensemble members over them.  The
  environment variable ``CONDENSATION_CPU_DEVICES`` sets the count instead
  (``1`` turns it off).  Nothing is changed when the backend has already
  started, or when ``XLA_FLAGS`` or ``jax_num_cpu_devices`` already set a count.
  A bad value changes nothing at import; ``PROBLEM`` keeps the error, which
  ``train`` raises and the CLI reports (exit status 2) before doing anything.
- Persistent compilation cache: most of a small run is XLA compilation, so
  compiled programs are kept on disk and reused by later processes (and by the
  other workers of one ``reproduce`` or ``sweep``).  The directory is the
  user's cache directory (``$XDG_CACHE_HOME/condensation/jax``, else
  ``~/.cache/condensation/jax`` on Linux; ``~/Library/Caches/condensation/jax``
  on macOS; ``%LOCALAPPDATA%\\condensation\\Cache\\jax`` on Windows);
  ``CONDENSATION_JAX_CACHE=DIR`` uses DIR instead and ``CONDENSATION_JAX_CACHE=off``
  switches it off.  Every program is kept (JAX's default keeps only those that
  took over a second to compile, which leaves out most of ours), up to
  ``CACHE_MAX_BYTES``: each process trims the directory once when it starts
  (:func:`trim_cache`, oldest entries first, down to ``CACHE_TRIM_TO``).  JAX's own
  size limit is not used: it scans and reads every entry of the directory, under a
  file lock, at every program it writes, which made a run against a cache of 10,000
  entries 60 % dearer.  Without that lock a worker may, rarely, read an entry
  another is still writing; JAX then warns and compiles the program itself.  Nothing is changed
  when JAX's own ``jax_compilation_cache_dir`` (``JAX_COMPILATION_CACHE_DIR``)
  is already set.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import jax

from condensation.errors import InputError

ENV_VAR = "CONDENSATION_CPU_DEVICES"
CACHE_ENV_VAR = "CONDENSATION_JAX_CACHE"
CACHE_OFF = ("off", "0", "false", "no", "none")
CACHE_MAX_BYTES = 2 * 1024**3
CACHE_TRIM_TO = 3 * 1024**3 // 2  # a trim leaves at most this much (room before the next)
JAX_SUFFIXES = ("-cache", "-atime")  # the files of one JAX cache entry
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


def default_cache_dir() -> Path:
    """The platform's usual per-user cache directory for our compiled programs."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
        return base / "condensation" / "Cache" / "jax"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "condensation" / "jax"
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "condensation" / "jax"


def compile_cache_dir() -> Path | None:
    """``$CONDENSATION_JAX_CACHE`` (None when switched off), else the default."""
    raw = os.environ.get(CACHE_ENV_VAR, "").strip()
    if raw.lower() in CACHE_OFF:
        return None
    return Path(raw).expanduser() if raw else default_cache_dir()


def configure_compile_cache() -> Path | None:
    """Turn on JAX's persistent compilation cache (see the module docstring); returns
    the directory in use, or None (switched off, or set by the user through JAX)."""
    if jax.config.jax_compilation_cache_dir is not None:
        return None  # the user's own JAX setting stands
    path = compile_cache_dir()
    if path is None:
        return None
    try:  # an unwritable place (read-only home) leaves the cache off, quietly
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    if not os.access(path, os.W_OK):
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    jax.config.update("jax_compilation_cache_max_size", -1)  # no scan at every write
    trim_cache(path)
    return path


def trim_cache(path: Path, max_bytes: int = CACHE_MAX_BYTES, to_bytes: int = CACHE_TRIM_TO) -> int:
    """If JAX's entries in ``path`` (files named ``*-cache`` / ``*-atime``; nothing
    else there is read or touched) exceed ``max_bytes``, delete the oldest (by modification
    time; an entry's ``-cache`` and ``-atime`` files together) until at most
    ``to_bytes`` remain.  One directory scan; files another process removes or
    writes meanwhile are skipped.  Returns the bytes deleted."""
    entries: dict[str, list] = {}  # key -> [newest mtime, total bytes, paths]
    total = 0
    try:
        with os.scandir(path) as it:
            for e in it:
                if not e.is_file(follow_symlinks=False) or not e.name.endswith(JAX_SUFFIXES):
                    continue  # only JAX's own entries: never a file it did not write
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue
                key = e.name.rsplit("-", 1)[0]  # NAME-HASH-cache / NAME-HASH-atime
                rec = entries.setdefault(key, [0.0, 0, []])
                rec[0] = max(rec[0], st.st_mtime)
                rec[1] += st.st_size
                rec[2].append(e.path)
                total += st.st_size
    except OSError:
        return 0
    if total <= max_bytes:
        return 0
    freed = 0
    for _, size, paths in sorted(entries.values(), key=lambda r: r[0]):
        if total - freed <= to_bytes:
            break
        for f in paths:
            try:
                os.remove(f)
            except OSError:
                pass
        freed += size
    return freed


def configure() -> None:
    global PROBLEM
    jax.config.update("jax_enable_x64", True)
    configure_compile_cache()
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
