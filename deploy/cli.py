"""``parcelstream``: one command line for the whole pipeline.

The stages keep their own commands (``producers/cli.py``, ``streams/cli.py``,
``consumers/cli.py``); this module only gathers them and adds the local stack (``dev up``) and the
demo, which launches every stage as its own process.
"""

from __future__ import annotations

import signal
import sys
import threading

import typer
from rich.console import Console

from deploy.embedded import EmbeddedBroker, StackError, check_redis, create_topics

console = Console(stderr=True)
app = typer.Typer(
    name="parcelstream",
    help="Event-driven parcel tracking: carriers' scans → Kafka → Faust → customers and operations.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
dev = typer.Typer(help="The embedded local stack (Tansu broker + Redis check + topics).", no_args_is_help=True)
app.add_typer(dev, name="dev")


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return stop


@dev.command("up")
def dev_up(
    port: int = typer.Option(
        0, help="Broker port on 127.0.0.1; 0 picks a free one.", envvar="PARCELSTREAM_BROKER_PORT"
    ),
    redis_url: str = typer.Option("redis://127.0.0.1:6379/0", envvar="PARCELSTREAM_REDIS_URL", help="Redis to check."),
    topic_prefix: str = typer.Option("parcelstream", envvar="PARCELSTREAM_TOPIC_PREFIX", help="Topic name prefix."),
    partitions: int = typer.Option(4, envvar="PARCELSTREAM_PARTITIONS", help="Partitions per topic."),
) -> None:
    """Start the embedded broker, check Redis, create the topics; run until Ctrl-C / SIGTERM."""
    stop = _stop_on_signals()
    broker = EmbeddedBroker(port=port)
    try:
        check_redis(redis_url)
        bootstrap = broker.start()
        created = create_topics(bootstrap, topic_prefix, partitions)
    except StackError as error:
        broker.stop()
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from None
    console.print(f"broker  [bold]{bootstrap}[/bold]  (Tansu, memory storage; log {broker.log_path})")
    console.print(f"redis   {redis_url}")
    console.print(f"topics  {len(created)} created under '{topic_prefix}.' with {partitions} partitions")
    console.print(f"export PARCELSTREAM_BOOTSTRAP_SERVERS={bootstrap}  # for the other commands")
    console.print("Ctrl-C stops the stack.")
    try:
        stop.wait()
    finally:
        broker.stop()
        console.print("stack stopped")


def _add_stage_commands() -> None:
    # Each stage owns its commands; the root only mounts them.
    from producers.cli import app as producers_app

    app.add_typer(producers_app)


def main() -> None:
    _add_stage_commands()
    try:
        app()
    except StackError as error:
        console.print(f"[red]error:[/red] {error}")
        sys.exit(1)
