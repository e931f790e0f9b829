"""Helpers shared by the test modules (imported as ``helpers``: pytest puts tests/ on
the path)."""

from __future__ import annotations

import contextlib


def sets(items: list[str]) -> list[str]:
    """``["a=1", "b=2"]`` -> ``["--set", "a=1", "--set", "b=2"]``."""
    return [a for s in items for a in ("--set", s)]


@contextlib.contextmanager
def ctrl_c_in_train(monkeypatch, at_step: int = 20):
    """Within the block, an in-process ``condensation train`` is interrupted as by
    Ctrl-C once its progress reaches ``at_step`` steps."""
    from condensation.cli import _train

    @contextlib.contextmanager
    def ctrl_c(total, description):
        def update(done):
            if done >= at_step:
                raise KeyboardInterrupt

        yield update

    with monkeypatch.context() as m:
        m.setattr(_train, "progress_bar", ctrl_c)
        yield
