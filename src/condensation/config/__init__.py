"""Configuration: one TOML / ``--set`` pipeline, the network and matrix configs, input checks.

``network`` is the network config (:class:`Config`, :func:`load_config`);
``matrix`` the matrix-completion config; ``checks`` the validation layer every
input goes through (one line naming field, value and fix).
"""

from condensation.config.network import Config, load_config

__all__ = ["Config", "load_config"]
