"""Commands: from a validated config to arrays, a summary and figures on disk.

One registry (:mod:`condensation.commands.registry`): every command is
load -> prepare once -> run -> write, walked alike by the command line, sweep
cells and :func:`execute`.
"""

from condensation.commands.registry import Command, execute, get, names, register

__all__ = ["Command", "execute", "get", "names", "register"]
