"""The command line as a click command, for the site's CLI reference (mkdocs-click
reads ``command``; the hooks put this folder on ``sys.path``)."""

import typer

from condensation.cli import app

command = typer.main.get_command(app)
