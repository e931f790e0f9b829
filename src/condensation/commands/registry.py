"""The registry of commands: one shape, load -> prepare (once) -> run -> write.

Every command (``train``, ``effective``, ``matrix``, and what comes) is one
frozen :class:`Command` record of plain functions, one per step.  The command
line (:mod:`condensation.cli`), sweep cells and :func:`execute` all walk the same
steps through it:

1. ``load(path, overrides)``: the validated config from a TOML file (None: the
   built-in defaults) and ``--set`` overrides;
2. ``options(given)``: the command's own flags (``effective``'s ``form``,
   ``compare_gd``, ``rtol``) checked, defaults filled in;
3. ``prepare(config, options)``: data, problem, ensemble built and checked once
   (``train.steps = "auto"`` resolved); everything after uses this object;
4. ``key(prepared, options)`` and ``output_bytes(prepared, options)``: the run's
   key (``--resume``) and the size of its directory, checked before any compute;
5. ``run(prepared, options, progress, checkpoint)``: the computation;
6. ``write(run, directory)``: config, arrays, ``summary.json`` and figures into
   an existing empty directory; returns the summary.

The built-in commands are imported when first asked for (``effective`` brings in
diffrax, which ``train`` does without).  :func:`register` adds another.

>>> from condensation.commands import registry
>>> registry.names()[:3]
['train', 'effective', 'matrix']
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from condensation.errors import InputError

if TYPE_CHECKING:
    from condensation.store.checkpoint import Checkpoint

Progress = Callable[[int], None]


def no_options(given: Mapping[str, Any]) -> dict[str, Any]:
    """The options of a command that takes none: an empty dict.

    Args:
        given: the options given (must be empty).

    Returns:
        ``{}``.

    Raises:
        InputError: an option was given.
    """
    for name, value in given.items():
        raise InputError(name, value, "this command takes no such option", "drop it")
    return {}


@dataclass(frozen=True)
class Command:
    """One command of ``condensation``, as the steps every caller walks.

    Attributes:
        name: the command's name on the command line (``train``).
        load: ``(path | None, overrides) -> config``: the validated config.
        prepare: ``(config, options) -> prepared``: built and checked once.
        run: ``(prepared, options, progress | None, checkpoint | None) -> run``.
        write: ``(run, directory) -> summary``: the run directory's files.
        key: ``(prepared, options) -> str``: what determines the run (``--resume``).
        output_bytes: ``(prepared, options) -> float``: the run directory's size.
        options: ``(given) -> options``: the command's own flags checked, with
            defaults (:func:`no_options` for a command without).
    """

    name: str
    load: Callable[[Path | None, Sequence[str]], Any]
    prepare: Callable[[Any, Mapping[str, Any]], Any]
    run: Callable[[Any, Mapping[str, Any], Progress | None, Checkpoint | None], Any]
    write: Callable[[Any, Path], dict]
    key: Callable[[Any, Mapping[str, Any]], str]
    output_bytes: Callable[[Any, Mapping[str, Any]], float]
    options: Callable[[Mapping[str, Any]], dict[str, Any]] = no_options


# the built-in commands: name -> the module that defines its COMMAND (imported when asked)
BUILTIN: dict[str, str] = {
    "train": "condensation.commands.train",
    "effective": "condensation.commands.effective",
    "matrix": "condensation.commands.matrix",
}
_ADDED: dict[str, Command] = {}


def register(command: Command, *, replace: bool = False) -> Command:
    """Add a command to the registry (or, with ``replace``, stand in for one).

    Args:
        command: the command.
        replace: allow replacing a command of the same name (a built-in included).

    Returns:
        The command (so that ``COMMAND = register(Command(...))`` reads well).

    Raises:
        ValueError: a command of that name exists and ``replace`` is false.
    """
    if not replace and (command.name in BUILTIN or command.name in _ADDED):
        raise ValueError(f"a command named {command.name!r} is registered already")
    _ADDED[command.name] = command
    return command


def unregister(name: str) -> None:
    """Remove a command added by :func:`register` (a built-in one comes back).

    Args:
        name: the command's name.
    """
    _ADDED.pop(name, None)


def names() -> list[str]:
    """The registered commands' names, the built-in ones first.

    Returns:
        The names, in registration order.
    """
    return [*BUILTIN, *(n for n in _ADDED if n not in BUILTIN)]


def get(name: str) -> Command:
    """The command named ``name``.

    Args:
        name: a registered command's name.

    Returns:
        Its :class:`Command`.

    Raises:
        InputError: no such command.
    """
    if name in _ADDED:
        return _ADDED[name]
    if name in BUILTIN:
        return importlib.import_module(BUILTIN[name]).COMMAND
    raise InputError("command", name, "unknown command", f"use one of {', '.join(names())}")


def execute(
    name: str,
    config: Any,
    out_dir: str | Path,
    options: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
) -> dict:
    """Prepare, run and write one run of a command for an already validated config.

    ``out_dir`` is built beside itself and renamed into place when complete
    (:func:`condensation.store.rundir.run_directory`): a directory that exists is
    a complete run.  This is a sweep cell, and the single run the CLI makes of the
    same config and options (without its disk check, lock, key and checkpoint).

    Args:
        name: the command (``train``, ``effective``, ``matrix``, or one registered).
        config: its validated config (what the command's ``load`` returns).
        out_dir: the run directory to create (must not exist).
        options: the command's own options (``effective``: ``form``, ``compare_gd``,
            ``rtol``); defaults for those not given.
        progress: called with the number of steps done (commands that train).

    Returns:
        The run's summary as written to ``summary.json`` (plain JSON types, non-finite
        numbers as None): what reading the run back gives.
    """
    from condensation.store.atomic import jsonable
    from condensation.store.rundir import run_directory

    cmd = get(name)
    opts = cmd.options(options or {})
    prepared = cmd.prepare(config, opts)
    run = cmd.run(prepared, opts, progress, None)
    with run_directory(Path(out_dir)) as tmp:
        return jsonable(cmd.write(run, tmp))
