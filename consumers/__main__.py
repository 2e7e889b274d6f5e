"""``python -m consumers ...``: the consumer commands without the root CLI."""

from consumers.cli import app

app(prog_name="python -m consumers")
