"""``python -m streams worker ...``: the stream-processor commands without the root CLI."""

import typer

from streams.cli import app as streams_app

root = typer.Typer(
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, help=streams_app.info.help
)
root.add_typer(streams_app)
root(prog_name="python -m streams")
