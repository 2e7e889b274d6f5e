"""``parcelstream worker``: run the stream processor (also ``python -m streams worker``).

Every flag falls back to its ``PARCELSTREAM_*`` environment variable, then to the default.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console

from streams.settings import LogLevel, StoreKind, WorkerSettings

console = Console(stderr=True)
app = typer.Typer(
    help="Stream processing: parcel state, status updates and SLA events (Faust).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _default(name: str) -> str:
    return f" (default: {WorkerSettings.model_fields[name].default})"


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(1)


@app.command("worker")
def worker(
    bootstrap_servers: Annotated[
        str | None,
        typer.Option(
            envvar="PARCELSTREAM_BOOTSTRAP_SERVERS",
            show_default=False,
            help="Kafka bootstrap servers, host:port[,host:port]." + _default("bootstrap_servers"),
        ),
    ] = None,
    topic_prefix: Annotated[
        str | None,
        typer.Option(
            envvar="PARCELSTREAM_TOPIC_PREFIX",
            show_default=False,
            help="Prefix of the topic names; the worker's app id and consumer group are <prefix>-worker."
            + _default("topic_prefix"),
        ),
    ] = None,
    partitions: Annotated[
        int | None,
        typer.Option(
            envvar="PARCELSTREAM_PARTITIONS",
            show_default=False,
            help="Partitions of topics the worker creates; existing topics keep theirs." + _default("partitions"),
        ),
    ] = None,
    clock_speed: Annotated[
        float | None,
        typer.Option(
            envvar="PARCELSTREAM_CLOCK_SPEED",
            show_default=False,
            help="Event-time seconds per wall second for SLA timers: 1 in production, the simulator's time "
            "compression in a demo." + _default("clock_speed"),
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            envvar="PARCELSTREAM_METRICS_PORT",
            show_default=False,
            help="Port of the Prometheus /metrics endpoint; 0 turns it off." + _default("metrics_port"),
        ),
    ] = None,
    store: Annotated[
        StoreKind | None,
        typer.Option(
            envvar="PARCELSTREAM_STORE",
            show_default=False,
            help="Table storage: memory (rebuilt from the changelogs at start) or rocksdb (local disk, faster "
            "restarts)." + _default("store"),
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            envvar="PARCELSTREAM_DATA_DIR",
            show_default=False,
            help="Directory for local state (RocksDB tables)." + _default("data_dir"),
        ),
    ] = None,
    log_level: Annotated[
        LogLevel | None,
        typer.Option(envvar="PARCELSTREAM_LOG_LEVEL", show_default=False, help="Log level." + _default("log_level")),
    ] = None,
    sla_timer_interval: Annotated[
        float | None,
        typer.Option(
            envvar="PARCELSTREAM_SLA_TIMER_INTERVAL",
            show_default=False,
            help="Seconds between two sweeps of the SLA timer." + _default("sla_timer_interval"),
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            envvar="PARCELSTREAM_BATCH_SIZE",
            show_default=False,
            help="Most messages processed as one batch: one table write per key and one ParcelState per parcel "
            "per batch." + _default("batch_size"),
        ),
    ] = None,
    batch_timeout: Annotated[
        float | None,
        typer.Option(
            envvar="PARCELSTREAM_BATCH_TIMEOUT",
            show_default=False,
            help="Seconds to wait for a batch to fill after the previous one before processing what arrived "
            "(latency at low load; under load batches grow anyway)." + _default("batch_timeout"),
        ),
    ] = None,
    state_cache_size: Annotated[
        int | None,
        typer.Option(
            envvar="PARCELSTREAM_STATE_CACHE_SIZE",
            show_default=False,
            help="Decoded parcels and units kept in memory between batches (cleared on every rebalance); 0 turns "
            "it off." + _default("state_cache_size"),
        ),
    ] = None,
    max_scans_per_parcel: Annotated[
        int | None,
        typer.Option(
            envvar="PARCELSTREAM_MAX_SCANS_PER_PARCEL",
            show_default=False,
            help="History entries a parcel keeps at most; later scans are dead-lettered too_many_scans."
            + _default("max_scans_per_parcel"),
        ),
    ] = None,
    retention_days: Annotated[
        float | None,
        typer.Option(
            envvar="PARCELSTREAM_RETENTION_DAYS",
            show_default=False,
            help="Days (event time) a closed parcel is kept before it is archived (its Redis view and "
            "parcel-state value deleted)." + _default("retention_days"),
        ),
    ] = None,
    expire_days: Annotated[
        float | None,
        typer.Option(
            envvar="PARCELSTREAM_EXPIRE_DAYS",
            show_default=False,
            help="Days without a scan after which an open parcel expires; also how long an archived parcel "
            "refuses late scans." + _default("expire_days"),
        ),
    ] = None,
    unit_retention_days: Annotated[
        float | None,
        typer.Option(
            envvar="PARCELSTREAM_UNIT_RETENTION_DAYS",
            show_default=False,
            help="Days after its last scan a handling unit is forgotten (a reused ULD id starts a fresh membership)."
            + _default("unit_retention_days"),
        ),
    ] = None,
    max_unit_members: Annotated[
        int | None,
        typer.Option(
            envvar="PARCELSTREAM_MAX_UNIT_MEMBERS",
            show_default=False,
            help="Members a handling unit keeps at most; a manifest past it is dead-lettered unit_too_large."
            + _default("max_unit_members"),
        ),
    ] = None,
    web_port: Annotated[
        int | None,
        typer.Option(
            envvar="PARCELSTREAM_WEB_PORT",
            show_default=False,
            help="Port of Faust's web server (worker introspection); 0 turns it off." + _default("web_port"),
        ),
    ] = None,
    max_future: Annotated[
        float | None,
        typer.Option(
            envvar="PARCELSTREAM_MAX_FUTURE",
            show_default=False,
            help="Seconds a scan's or manifest's event time may lie ahead of now (the wall clock, or the event "
            "clock when --clock-speed > 1); later ones are dead-lettered event_time_out_of_range."
            + _default("max_future"),
        ),
    ] = None,
    max_age: Annotated[
        float | None,
        typer.Option(
            envvar="PARCELSTREAM_MAX_AGE",
            show_default=False,
            help="Seconds a scan's or manifest's event time may lie behind now (the same now as --max-future); "
            "older ones are dead-lettered event_time_out_of_range." + _default("max_age"),
        ),
    ] = None,
    max_fanout_depth: Annotated[
        int | None,
        typer.Option(
            envvar="PARCELSTREAM_MAX_FANOUT_DEPTH",
            show_default=False,
            help="Handling units a unit scan's copies may pass through (container > ULD > bag > parcel is 3); "
            "deeper copies are dead-lettered fanout_too_deep." + _default("max_fanout_depth"),
        ),
    ] = None,
) -> None:
    """Run the stream-processor worker until Ctrl-C / SIGTERM (several workers share the partitions)."""
    flags: dict[str, Any] = {
        "bootstrap_servers": bootstrap_servers,
        "topic_prefix": topic_prefix,
        "partitions": partitions,
        "clock_speed": clock_speed,
        "metrics_port": metrics_port,
        "store": store,
        "data_dir": data_dir,
        "log_level": log_level,
        "sla_timer_interval": sla_timer_interval,
        "batch_size": batch_size,
        "batch_timeout": batch_timeout,
        "state_cache_size": state_cache_size,
        "max_scans_per_parcel": max_scans_per_parcel,
        "max_unit_members": max_unit_members,
        "retention_days": retention_days,
        "expire_days": expire_days,
        "unit_retention_days": unit_retention_days,
        "web_port": web_port,
        "max_future": max_future,
        "max_age": max_age,
        "max_fanout_depth": max_fanout_depth,
    }
    try:
        settings = WorkerSettings(**{name: value for name, value in flags.items() if value is not None})
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "settings"
        raise _fail(f"invalid setting {field}: {first['msg']}") from None
    run_worker(settings)


def run_worker(settings: WorkerSettings) -> None:
    """Check the set-up, then run the Faust worker in this process until it is stopped."""
    from streams.worker.admin import SetupError, ensure_topics

    if settings.clock_speed <= 0:
        raise _fail(f"--clock-speed must be > 0, got {settings.clock_speed}")
    if settings.store == "rocksdb":
        try:
            import rocksdict  # noqa: F401
        except ImportError:
            raise _fail("--store rocksdb needs rocksdict: pip install 'faust-streaming[rocksdict]'") from None
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _fail(f"cannot create the data directory {settings.data_dir}: {error.strerror}") from None
    try:
        created, partitions = ensure_topics(settings)
    except SetupError as error:
        raise _fail(str(error)) from None
    if created:
        console.print(f"created {len(created)} topics: {', '.join(created)}", highlight=False)
    if partitions != settings.partitions:
        console.print(f"topics have {partitions} partitions: using {partitions}", highlight=False)
        settings = settings.model_copy(update={"partitions": partitions})

    from streams.worker import metrics

    if settings.metrics_port:
        from prometheus_client import start_http_server

        try:
            start_http_server(settings.metrics_port)
        except OSError as error:
            raise _fail(f"cannot serve metrics on port {settings.metrics_port}: {error.strerror}") from None

    import faust
    import mode.loop

    from streams.worker.agents import StreamWorker
    from streams.worker.app import create_app, tune_gc

    mode.loop.use("uvloop")
    faust_app = create_app(settings)
    StreamWorker(faust_app, settings)
    console.print(
        f"worker {settings.app_id}: {settings.bootstrap_servers}, topics {settings.topic_prefix}.*, "
        f"{settings.partitions} partitions, store {settings.store}, clock speed {settings.clock_speed:g}"
        + (f", metrics on :{settings.metrics_port}" if settings.metrics_port else ""),
        highlight=False,
    )
    metrics.WORKER_UP.labels("streams").set(1)
    worker = faust.Worker(faust_app, loglevel=settings.log_level.upper(), quiet=not sys.stdout.isatty())
    # Faust's start-up spinner sets the root logger to DEBUG for its handler: every debug call of
    # aiokafka and Faust (several per message produced) would then build a log record.
    worker.spinner = None
    tune_gc()
    try:
        # Runs until SIGTERM/SIGINT, then stops the app (commits offsets) and exits the process.
        worker.execute_from_commandline()
    finally:
        metrics.WORKER_UP.labels("streams").set(0)
        logging.shutdown()
