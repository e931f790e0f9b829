"""Training: one compiled loop driver, and what plugs into it.

``engine`` is the driver (the one step loop, device spread, chunked intervals,
checkpoint and resume, divergence freeze, the escape / plateau-exit / peak
rules, hand-off); ``network`` (with ``network_model``: loss, update, watches)
trains ensembles of networks on it, ``optimizers`` holds GD, SGD, momentum and
Adam; ``tolerance`` trains to a loss tolerance on its step loop; ``fastforward``
skips the first plateau (``ff_flows``: the effective trajectories, ``ff_solve``:
the second-order solve, ``ff_plan``: the hand-off search and what is kept from
before it, ``tstar``: the predicted blow-up times); ``devices`` spreads members
over devices; ``snapshots`` plans which states are stored.  The matrix trainer
(:mod:`condensation.matrix.training`) plugs into the same engine.
"""
