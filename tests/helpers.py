"""Helpers shared by the test modules (imported as ``helpers``: pytest puts tests/ on
the path)."""

from __future__ import annotations

import contextlib


def sets(items: list[str]) -> list[str]:
    """``["a=1", "b=2"]`` -> ``["--set", "a=1", "--set", "b=2"]``."""
    return [a for s in items for a in ("--set", s)]


@contextlib.contextmanager
def ctrl_c_in_train(at_step: int = 20):
    """Within the block, an in-process ``condensation train`` is interrupted as by
    Ctrl-C once its progress reaches ``at_step`` steps (no pytest fixture needed: the
    fuzz runner uses it outside pytest)."""
    from condensation.cli import _train

    @contextlib.contextmanager
    def ctrl_c(total, description):
        def update(done):
            if done >= at_step:
                raise KeyboardInterrupt

        yield update

    saved = _train.progress_bar
    _train.progress_bar = ctrl_c
    try:
        yield
    finally:
        _train.progress_bar = saved
