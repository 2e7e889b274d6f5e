"""``parcelstream simulate``: realistic Liège hub traffic, published in compressed real time.

``simulate`` is a plain typer command function; producers/cli.py mounts it, and
``python -m producers.simulator`` runs it on its own.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from producers.simulator.hostile import with_hostile
from producers.simulator.jsonl import iso_time, write_jsonl
from producers.simulator.model import AnomalyRates, SimulationConfig
from producers.simulator.model import simulate as generate
from schemas.settings import PipelineSettings
from schemas.topics import TopicNames

if TYPE_CHECKING:
    from producers.simulator.runner import RunSummary

console = Console(stderr=True)


class SimulatorError(RuntimeError):
    """A problem the user can fix, explained in one line."""


def check_topics(bootstrap_servers: str, topics: TopicNames, timeout: float = 10.0) -> None:
    """Fail early, in one line, when the broker does not answer or the topics are missing."""
    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 0})
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as error:
        raise SimulatorError(
            f"Kafka at {bootstrap_servers} does not answer ({error.args[0].str()}): start it with "
            "`parcelstream dev up` or set --bootstrap-servers / PARCELSTREAM_BOOTSTRAP_SERVERS"
        ) from None
    missing = [name for name in (topics.scans, topics.manifests) if name not in metadata.topics]
    if missing:
        raise SimulatorError(
            f"topic(s) {', '.join(missing)} do not exist on {bootstrap_servers}: create them with "
            f"`parcelstream topics create --topic-prefix {topics.prefix}`"
        )


def parse_start(text: str | None) -> int | None:
    """ISO-8601 time (UTC when it has no offset) → UTC epoch ms; None stays None (now)."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise SimulatorError(f"--start {text!r} is not an ISO-8601 time, e.g. 2026-11-11T00:00:00+08:00") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """SIGINT / SIGTERM set the event (the runner then flushes and stops); handlers restored after."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {signum: signal.signal(signum, lambda *_: stop.set()) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def simulate(
    seed: int = typer.Option(1, help="Seed of the generator: the same seed (and --start) gives the same traffic."),
    parcels: int = typer.Option(200, min=0, help="Parcels of a one-off simulation (not used with --rate)."),
    rate: float = typer.Option(
        0.0, min=0, help="Continuous generation: new parcels per simulated hour. 0: one simulation of --parcels."
    ),
    duration: float | None = typer.Option(
        None,
        min=0,
        help="Stop after this many wall seconds. Default: when every record is sent (with --rate: at Ctrl-C).",
    ),
    speed: float = typer.Option(
        8640.0,
        min=0,
        help="Simulated seconds per wall second: 8640 = one simulated day per 10 s; 0 = as fast as possible.",
    ),
    start: str | None = typer.Option(
        None, help="Simulated time of the first order, ISO 8601 (UTC if no offset). Default: now."
    ),
    export_share: float = typer.Option(0.1, min=0, max=1, help="Share of parcels on the export flow (BE → CN)."),
    anomalies: bool = typer.Option(
        True, "--anomalies/--no-anomalies", help="Include delays, losses, mis-sorts, duplicates, late scans..."
    ),
    hostile: float = typer.Option(
        0.0,
        min=0,
        max=1,
        help="Mix in a hostile carrier: about this many hostile records per honest record (bags inside "
        "themselves, scans dated 2100 or past year 9999, forged orders, deliveries by the wrong carrier; "
        "see docs/simulator.md). The pipeline must dead-letter each one. 0: none.",
    ),
    bootstrap_servers: str | None = typer.Option(
        None, help="Kafka bootstrap servers. Default: $PARCELSTREAM_BOOTSTRAP_SERVERS or 127.0.0.1:9092."
    ),
    topic_prefix: str | None = typer.Option(
        None, help="Topic name prefix. Default: $PARCELSTREAM_TOPIC_PREFIX or parcelstream."
    ),
    metrics_port: int | None = typer.Option(None, help="Serve Prometheus /metrics on this port while running."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Generate and summarise, publish nothing."),
    output: str | None = typer.Option(
        None,
        "--output",
        "-o",
        help="Write the records as parcelstream JSON Lines to this file instead of publishing "
        "(replay with `parcelstream publish`); - writes to stdout.",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No live progress; only a one-line summary."),
) -> None:
    """Simulate Liège hub traffic (air, rail, sea imports and BE → CN exports) and publish it."""
    try:
        config = SimulationConfig(
            seed=seed,
            parcels=parcels,
            start_ms=parse_start(start),
            export_share=export_share,
            anomalies=AnomalyRates() if anomalies else AnomalyRates.none(),
        )
        if dry_run or output is not None:
            _generate_only(config, rate, output, quiet, hostile)
            return
        settings = PipelineSettings()
        overrides = {"bootstrap_servers": bootstrap_servers, "topic_prefix": topic_prefix}
        settings = settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})
        check_topics(settings.bootstrap_servers, settings.topics)
        summary = _publish(config, settings, rate, duration, speed, metrics_port, quiet, hostile)
    except (SimulatorError, ValueError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    except OSError as error:  # e.g. the metrics port is taken
        console.print(f"[red]error:[/red] {error.strerror or error}")
        raise typer.Exit(2) from None
    _print_summary(summary, quiet)
    if not summary.ok:
        raise typer.Exit(1)


def _generate_only(config: SimulationConfig, rate: float, output: str | None, quiet: bool, hostile: float) -> None:
    if rate > 0:
        raise SimulatorError("--rate generates without end: use --parcels with --dry-run or --output")
    simulation, hostile_records = with_hostile(generate(config), hostile)
    if output is not None:
        if output == "-":
            lines = write_jsonl(simulation.records, sys.stdout)
        else:
            with Path(output).open("w", encoding="utf-8") as file:
                lines = write_jsonl(simulation.records, file)
        console.print(f"wrote {lines:,} records of {len(simulation.truth):,} parcels to {output}")
    counts = simulation.count_by_source()
    if quiet:
        console.print(", ".join(f"{source} {count:,}" for source, count in sorted(counts.items())))
        return
    table = Table(title=f"simulation (seed {config.seed}, {len(simulation.truth):,} parcels)")
    table.add_column("source")
    table.add_column("records", justify="right")
    for source, count in sorted(counts.items()):
        table.add_row(source, f"{count:,}")
    console.print(table)
    applied = ", ".join(f"{name} {count}" for name, count in sorted(simulation.anomalies.items()))
    console.print(f"anomalies: {applied or 'none'}")
    if hostile_records:
        kinds = Counter(h.kind for h in hostile_records)
        console.print("hostile records: " + ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items())))


def _publish(
    config: SimulationConfig,
    settings: PipelineSettings,
    rate: float,
    duration: float | None,
    speed: float,
    metrics_port: int | None,
    quiet: bool,
    hostile: float = 0.0,
) -> RunSummary:
    # Imported here: the root CLI mounts every stage in one process, and the runner registers the
    # producers' Prometheus metrics.
    from producers.simulator.runner import SimulationRunner

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
        disable=quiet,
    )
    task = progress.add_task("simulating", total=None, detail="")

    def show(summary: RunSummary) -> None:
        total = summary.scheduled if summary.scheduled is not None else None
        completed = summary.total_sent
        if total is None and duration:
            total, completed = duration, min(summary.elapsed_s, duration)
        acknowledged = sum(summary.acknowledged.values())
        clock = iso_time(summary.simulated_ms)[:16].replace("T", " ") if summary.simulated_ms else "-"
        detail = f"sim {clock} · {summary.parcels:,} parcels · sent {summary.total_sent:,} · acked {acknowledged:,}"
        progress.update(task, total=total, completed=completed, detail=detail)

    with _stop_on_signals() as stop, progress:
        runner = SimulationRunner(
            settings.bootstrap_servers,
            settings.topics,
            speed=speed,
            metrics_port=metrics_port,
            stop=stop,
            on_progress=show,
            hostile_rate=hostile,
        )
        if rate > 0:
            return runner.run_continuous(config, rate, duration)
        return runner.run(generate(config), duration)


def _print_summary(summary: RunSummary, quiet: bool) -> None:
    ending = "stopped" if summary.interrupted else "done"
    acknowledged = sum(summary.acknowledged.values())
    failed = sum(summary.failed.values())
    line = (
        f"{ending} in {summary.elapsed_s:,.1f} s: {summary.parcels:,} parcels, {summary.total_sent:,} records sent, "
        f"{acknowledged:,} acknowledged, {failed:,} failed, {summary.not_yet_due:,} not yet due"
    )
    if not quiet:
        table = Table(title="published per source")
        for column in ("source", "sent", "acknowledged", "failed"):
            table.add_column(column, justify="left" if column == "source" else "right")
        for source in sorted(summary.sent):
            table.add_row(
                source,
                f"{summary.sent[source]:,}",
                f"{summary.acknowledged[source]:,}",
                f"{summary.failed[source]:,}",
            )
        console.print(table)
    console.print(line)
    if summary.hostile:
        kinds = ", ".join(f"{kind} {count:,}" for kind, count in sorted(summary.hostile.items()))
        console.print(f"hostile records sent (the pipeline must dead-letter them): {kinds}")
    for failure in summary.failures[:5]:
        console.print(f"[red]not acknowledged:[/red] {failure.reference} on {failure.topic}: {failure.error}")


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
app.command()(simulate)
