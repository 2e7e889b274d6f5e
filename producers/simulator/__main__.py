"""``python -m producers.simulator``: the ``parcelstream simulate`` command on its own."""

from producers.simulator.cli import app

app(prog_name="parcelstream-simulate")
