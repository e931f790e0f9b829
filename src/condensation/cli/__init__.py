"""The ``condensation`` command line: parse, call the library, write files.

Bad input ends in one line on stderr naming the field, the value and the fix,
with exit status 2 and no output directory left behind.
"""

from __future__ import annotations

import sys

import typer

from condensation import _jax_setup
from condensation.cli import _effective, _experiments, _matrix, _sweep, _train
from condensation.cli._common import console_err
from condensation.errors import InputError, NumericalError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Training dynamics of neural networks from small initialisation (Chen & Luo 2024).",
)


@app.callback()
def _root() -> None:
    """Train networks from small initialisation, integrate their effective dynamics
    through its blow-up, and reproduce the paper's experiments."""


_train.register(app)
_effective.register(app)
_experiments.register(app)
_matrix.register(app)
_sweep.register(app)


def main() -> None:
    try:
        if _jax_setup.PROBLEM is not None:  # a bad CONDENSATION_CPU_DEVICES
            raise _jax_setup.PROBLEM
        app(standalone_mode=False)
    except InputError as e:
        console_err.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except NumericalError as e:
        console_err.print(f"[bold red]numerical failure:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(3)
    except typer.Abort:
        console_err.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        console_err.print("interrupted: nothing was written")
        sys.exit(130)
    except Exception as e:
        # usage errors (typer's click layer, vendored or not) carry their own exit
        # code and know how to print themselves; anything else is a bug: re-raise
        code = getattr(e, "exit_code", None)
        if code is None:
            raise
        if hasattr(e, "show"):
            e.show()
        sys.exit(code)
