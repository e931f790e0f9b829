"""The one engine for every multi-task job: tasks on a Dask distributed cluster.

:class:`Engine` runs a list of :class:`Task` (a module-level function and its
arguments) and yields an :class:`Outcome` for each as soon as it completes
(``as_completed``), so a driver can write every result when it arrives.

- Cluster: by default a ``LocalCluster`` with one single-threaded worker
  process per usable core (``workers=N`` to change); ``scheduler="tcp://..."``
  connects to a cluster started elsewhere (``dask scheduler`` /
  ``dask worker``, dask-jobqueue on SLURM).  ``workers=0`` runs the tasks one
  after another in this process (same API; for tasks that only this process
  can import, and for tiny jobs where a cluster's start-up would dominate).
- Cores: each local worker process exposes its share of the cores as JAX
  devices (``CONDENSATION_CPU_DEVICES`` in the workers' environment, set
  before JAX starts there), unless the user set the variable.
- Failures: a task that raises is reported as a failed outcome with a
  one-line error and the others go on; a task whose worker process dies is
  resubmitted up to ``retries`` times (then it fails with "worker died").  On
  the local cluster at most one task per worker is out at a time, so a dying
  worker takes only the task it was running with it.
- Lifetime: the local cluster is closed when the engine's block ends, also
  on Ctrl-C and SIGTERM (turned into ``KeyboardInterrupt`` while the engine
  is open, unless the caller has its own SIGTERM handler); worker processes
  are children of this one and end with it.
"""

from __future__ import annotations

import os
import signal
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from condensation import interrupts
from condensation.errors import InputError
from condensation.jax_setup import ENV_VAR, usable_cores


@dataclass(frozen=True)
class Task:
    """``fn(*args, **kwargs)``; ``fn`` must be importable by name on the workers."""

    key: str
    fn: Callable[..., Any]
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    key: str
    ok: bool
    value: Any = None
    error: str | None = None  # one line, when not ok
    attempts: int = 1
    input_error: tuple | None = None  # (field, value, problem, fix) of an InputError

    def raise_input_error(self) -> None:
        """Raise the task's :class:`InputError` again here, if it raised one."""
        if self.input_error is not None:
            raise InputError(*self.input_error)


def one_line(exc: BaseException) -> str:
    """``Type: message`` on one line (the last frame's location for bare errors)."""
    msg = " ".join(str(exc).split())
    if not msg:
        tb = traceback.extract_tb(exc.__traceback__)
        msg = f"at {tb[-1].filename}:{tb[-1].lineno}" if tb else ""
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def _guarded(fn: Callable[..., Any], args: tuple, kwargs: dict) -> tuple[bool, Any]:
    """Run on a worker: an exception becomes a value, so only a dead worker is retried."""
    try:
        return True, fn(*args, **kwargs)
    except InputError as e:
        return False, (one_line(e), (e.field, e.value, e.problem, e.fix))
    except Exception as e:  # noqa: BLE001 - reported per task, the sweep goes on
        return False, (one_line(e), None)


def _worker_died(exc: BaseException) -> bool:
    from distributed.comm import CommClosedError
    from distributed.scheduler import KilledWorker

    return isinstance(exc, (KilledWorker, CommClosedError, ConnectionError, OSError))


def check_options(workers: int | None, scheduler: str | None, retries: int) -> None:
    if workers is not None and workers < 0:
        raise InputError("--workers", workers, "must be >= 0", "give a worker count, e.g. 2")
    if retries < 0:
        raise InputError("--retries", retries, "must be >= 0", "give e.g. --retries 2")
    if scheduler is not None:
        if workers is not None:
            raise InputError(
                "--workers", workers, "not used with --scheduler", "drop one of the two options"
            )
        if "://" not in scheduler:
            raise InputError(
                "--scheduler", scheduler, "expected an address", "write e.g. tcp://10.0.0.5:8786"
            )


# Settings of the local cluster (passed on to its worker processes).  A dead worker
# fails its task at once; the engine resubmits it (retries).  The rest cut what
# runs beside the tasks, for a cluster of long single-threaded tasks and no
# dashboard: every process's event loop wakes every 20 ms to time itself (tick),
# samples system and process memory every 0.1-0.5 s, the workers profile their
# task thread every 10 ms, and the scheduler looks for tasks to steal (it queues
# them until a worker is free: there is nothing to steal).  With two workers on
# two cores this was ~5 % of each task's time (benchmarks/bench_sweep.py).  The
# memory limit is still enforced, checked every second.
_LOCAL_CONFIG = {
    "distributed.scheduler.allowed-failures": 0,
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.scheduler.work-stealing": False,
}


class Engine:
    """``with Engine(workers=2) as eng: for outcome in eng.run(tasks): ...``"""

    def __init__(
        self, workers: int | None = None, scheduler: str | None = None, retries: int = 2
    ) -> None:
        check_options(workers, scheduler, retries)
        self.scheduler = scheduler
        self.workers = usable_cores() if workers is None and scheduler is None else workers
        self.retries = retries
        self.cluster = None
        self.client = None
        self._old_sigterm = None
        self._old_grace = None

    @property
    def inline(self) -> bool:
        return self.scheduler is None and self.workers == 0

    # ---- lifetime -----------------------------------------------------------
    def __enter__(self) -> Engine:
        if (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
        ):  # (a handler the caller installed is kept: it unwinds this block too)
            self._old_sigterm = signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
        # worker processes are shut down by close(), which a hard deadline would cut
        self._old_grace = interrupts.set_grace(None)
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self) -> None:
        if self.inline:
            return
        import dask
        from distributed import Client, LocalCluster

        if self.scheduler is not None:
            try:
                self.client = Client(self.scheduler, timeout="20s")
            except (OSError, TimeoutError) as e:
                raise InputError(
                    "--scheduler",
                    self.scheduler,
                    f"cannot connect ({one_line(e)})",
                    "start `dask scheduler` there, or check the address",
                ) from None
            return
        env = {}
        if ENV_VAR not in os.environ:
            env[ENV_VAR] = str(max(1, usable_cores() // self.workers))
        with dask.config.set(_LOCAL_CONFIG):
            self.cluster = LocalCluster(
                n_workers=self.workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",  # a free port: never "8787 is already in use"
                env=env,
                silence_logs=50,
            )
            self.client = Client(self.cluster)

    def close(self) -> None:
        try:
            if self.client is not None:
                self.client.close()
            if self.cluster is not None:
                self.cluster.close()
        finally:
            self.client = self.cluster = None
            if self._old_grace is not None:
                interrupts.set_grace(self._old_grace)
                self._old_grace = None
            if self._old_sigterm is not None:
                signal.signal(signal.SIGTERM, self._old_sigterm)
                self._old_sigterm = None

    # ---- running ----------------------------------------------------------
    def run(self, tasks: Iterable[Task]) -> Iterator[Outcome]:
        """Yield one outcome per task, in order of completion."""
        tasks = list(tasks)
        if self.inline:
            for t in tasks:
                yield _outcome(t.key, *_guarded(t.fn, t.args, t.kwargs))
            return
        from distributed import as_completed

        attempts: dict[str, int] = {}
        by_future = {}

        def submit(t: Task):
            attempts[t.key] = attempts.get(t.key, 0) + 1
            fut = self.client.submit(_guarded, t.fn, t.args, t.kwargs, pure=False)
            by_future[fut] = t
            return fut

        # On the local cluster, at most one task per worker is submitted at a time:
        # Dask sends every submitted task to a worker at once (a few independent
        # tasks are not queued at the scheduler), and a worker that dies fails
        # every task it holds, so a killed worker also spent the retries of the
        # tasks waiting behind the one it ran.  (A cluster started elsewhere may
        # grow while the tasks run: all are submitted.)
        limit = self.workers if self.cluster is not None else len(tasks)
        waiting = tasks[max(limit, 1) :]
        waiting.reverse()
        pending = as_completed([submit(t) for t in tasks[: max(limit, 1)]])
        for fut in pending:
            t = by_future.pop(fut)
            try:
                ok, value = fut.result()
            except Exception as e:  # noqa: BLE001
                if _worker_died(e) and attempts[t.key] <= self.retries:
                    pending.add(submit(t))
                    continue
                why = "worker died" if _worker_died(e) else "task failed"
                ok, value = False, (f"{why} ({one_line(e)})", None)
            finally:
                fut.release()
            if waiting:  # the next task goes out before this outcome is handled
                pending.add(submit(waiting.pop()))
            yield _outcome(t.key, ok, value, attempts[t.key])


def _outcome(key: str, ok: bool, value: Any, attempts: int = 1) -> Outcome:
    if ok:
        return Outcome(key, True, value, attempts=attempts)
    return Outcome(key, False, None, value[0], attempts, value[1])


def _sigterm_to_interrupt(signum, frame):
    raise KeyboardInterrupt("SIGTERM")
