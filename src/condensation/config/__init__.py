"""Configuration: one TOML / ``--set`` pipeline, the network and matrix configs, input checks.

- ``parse``: the one TOML / ``--set`` parser and the one coercer (``Kind``, ``coerce``);
- ``sections``: values placed into a raw config and each ``[section]`` built;
- ``paths``: the one path resolver (relative to the file naming the path);
- ``network`` / ``matrix``: the two config families (frozen dataclasses, validated
  once), ``families``: which command takes which, with its path and scale keys;
- ``numbers``, ``files``, ``memory``, ``train_checks``: the checks every input goes
  through (one line naming field, value and fix); ``checks`` re-exports them.
"""

from condensation.config.network import Config, load_config

__all__ = ["Config", "load_config"]
