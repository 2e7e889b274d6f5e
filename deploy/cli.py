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
from rich.table import Table

from deploy.demo import DemoOptions, run_demo
from deploy.embedded import EmbeddedBroker, StackError, check_redis, create_topics
from deploy.parcels import app as parcels_app
from schemas.topics import ALL_TOPICS

console = Console(stderr=True, soft_wrap=True)
app = typer.Typer(
    name="parcelstream",
    help="Event-driven parcel tracking: carriers' scans → Kafka → Faust → customers and operations.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
dev = typer.Typer(help="The embedded local stack (Tansu broker + Redis check + topics).", no_args_is_help=True)
app.add_typer(dev, name="dev")
app.add_typer(parcels_app, name="parcels")


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


topics_app = typer.Typer(help="Kafka topics of the pipeline.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")


@topics_app.command("create")
def topics_create(
    bootstrap_servers: str = typer.Option(
        "127.0.0.1:9092", envvar="PARCELSTREAM_BOOTSTRAP_SERVERS", help="Kafka bootstrap servers."
    ),
    topic_prefix: str = typer.Option("parcelstream", envvar="PARCELSTREAM_TOPIC_PREFIX", help="Topic name prefix."),
    partitions: int = typer.Option(4, envvar="PARCELSTREAM_PARTITIONS", help="Partitions per topic."),
    replication_factor: int = typer.Option(
        1, envvar="PARCELSTREAM_REPLICATION_FACTOR", help="Replicas per topic (3 on a production cluster)."
    ),
) -> None:
    """Create every pipeline topic with explicit configs (existing topics are left as they are)."""
    created = create_topics(bootstrap_servers, topic_prefix, partitions, replication_factor=replication_factor)
    for spec in ALL_TOPICS:
        name = spec.name(topic_prefix)
        mark = "created" if name in created else "exists "
        console.print(f"{mark}  {name:<40} {spec.cleanup_policy:<8} retention.ms={spec.retention_ms}")


@topics_app.command("list")
def topics_list(
    topic_prefix: str = typer.Option("parcelstream", envvar="PARCELSTREAM_TOPIC_PREFIX", help="Topic name prefix."),
) -> None:
    """Show the topic catalog: name, key, value record, cleanup policy."""
    table = Table(title="parcelstream topics")
    for column in ("topic", "key", "value", "cleanup", "retention.ms"):
        table.add_column(column)
    for spec in ALL_TOPICS:
        table.add_row(spec.name(topic_prefix), spec.key, spec.value, spec.cleanup_policy, str(spec.retention_ms))
    Console().print(table)


@app.command()
def demo(
    duration: float = typer.Option(120.0, help="Seconds of simulated hub traffic (wall time)."),
    rate: float = typer.Option(12.0, help="New parcels per simulated hour (×speed/3600 per wall second)."),
    speed: float = typer.Option(8640.0, help="Simulated seconds per wall second (8640: one day per 10 s)."),
    seed: int = typer.Option(2026, help="Simulator seed: the same seed gives the same traffic."),
    workers: int = typer.Option(2, min=1, help="Stream-processor worker processes (one consumer group)."),
    partitions: int = typer.Option(4, min=1, help="Partitions per topic."),
    broker_port: int = typer.Option(0, help="Embedded broker port; 0 picks a free one."),
    tracking_port: int = typer.Option(8080, help="Port of the tracking API and page."),
    gateway_port: int = typer.Option(8081, help="Port of the carrier ingest gateway."),
    metrics_base_port: int = typer.Option(
        9101,
        help="First /metrics port: simulator +0, gateway +1, worker +2, projector +3, notifier +4, tracking +5 "
        "(workers +11...).",
    ),
    redis_url: str = typer.Option("redis://127.0.0.1:6379/0", envvar="PARCELSTREAM_REDIS_URL", help="Redis URL."),
    redis_prefix: str = typer.Option("parcelstream-demo", help="Key prefix of the demo's read model (cleared first)."),
) -> None:
    """Run the whole pipeline on the embedded stack with simulated Liège hub traffic.

    Every stage runs as its own process; the live summary reads their /metrics endpoints.
    """
    options = DemoOptions(
        duration=duration,
        rate=rate,
        speed=speed,
        seed=seed,
        workers=workers,
        partitions=partitions,
        broker_port=broker_port,
        tracking_port=tracking_port,
        gateway_port=gateway_port,
        metrics_base_port=metrics_base_port,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
    )
    raise typer.Exit(run_demo(options, Console()))


def _add_stage_commands() -> None:
    # Each stage owns its commands; the root only mounts them.
    from consumers.cli import app as consumers_app
    from producers.cli import app as producers_app
    from producers.gateway.cli import app as gateway_app
    from streams.cli import app as streams_app

    for stage_app in (producers_app, gateway_app, streams_app, consumers_app):
        app.add_typer(stage_app)


def main() -> None:
    _add_stage_commands()
    try:
        app(prog_name="parcelstream")
    except StackError as error:
        console.print(f"[red]error:[/red] {error}")
        sys.exit(1)
