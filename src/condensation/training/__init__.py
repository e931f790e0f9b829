"""Training: the compiled loop, what plugs into it, and the measurements it tracks.

``network`` trains ensembles of networks; ``optimizers`` holds GD, SGD, momentum
and Adam; ``tolerance`` trains to a loss tolerance; ``fastforward`` skips the
first plateau; ``devices`` spreads members over devices; ``snapshots`` plans
which states are stored.
"""
