"""Run directories: marker, lock and atomic writes (``rundir``), checkpoints, ``load_run``.

Ownership is proven by our own marker, never guessed from a name.
"""
