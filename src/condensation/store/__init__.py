"""Run directories, checkpoints and ``load_run``.

``rundir`` assembles a run directory (reserve, write aside, put in place) from
one module per question: ``owner`` (who made a leftover, is it gone), ``names``
(``--out`` and its hidden siblings), ``marker`` (the manifest and the run's key),
``checks`` (before anything is created), ``lock``, ``leftovers`` and ``atomic``
(JSON / TOML / arrays, atomic files); their names are re-exported from
``rundir``.  ``checkpoint`` (with ``checkpoint_files`` and ``chunking``) saves a
trainer's loop for ``--resume``; ``load_run`` reads a finished run.

Ownership is proven by our own marker, never guessed from a name.
"""
