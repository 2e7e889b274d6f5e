"""Consumer commands: ``projector``, ``tracking`` and ``tracking-link`` (plus the notifier's commands).

Every option defaults to its ``PARCELSTREAM_*`` environment variable (``consumers/settings.py``),
then to the built-in default shown in --help.
"""

from __future__ import annotations

import signal
import threading
from typing import Annotated, Any

import typer
from rich.console import Console

from consumers.read_model import InvalidRecordError, normalize_tracking_number
from consumers.settings import ConsumerSettings
from consumers.tracking import i18n

console = Console(stderr=True)
app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)

BootstrapOption = Annotated[
    str | None,
    typer.Option(help="Kafka bootstrap servers (env PARCELSTREAM_BOOTSTRAP_SERVERS; default 127.0.0.1:9092)."),
]
TopicPrefixOption = Annotated[
    str | None, typer.Option(help="Topic name prefix (env PARCELSTREAM_TOPIC_PREFIX; default parcelstream).")
]
RedisUrlOption = Annotated[
    str | None,
    typer.Option(help="Redis of the read model (env PARCELSTREAM_REDIS_URL; default redis://127.0.0.1:6379/0)."),
]
RedisPrefixOption = Annotated[
    str | None,
    typer.Option(help="Prefix of every read-model key (env PARCELSTREAM_REDIS_PREFIX; default parcelstream)."),
]
SecretOption = Annotated[
    str | None,
    typer.Option(
        help="Secret signing tracking-link tokens (env PARCELSTREAM_TRACKING_SECRET; default none: tokens off)."
    ),
]


def _settings(**overrides: Any) -> ConsumerSettings:
    """Environment first, then the flags the user gave."""
    return ConsumerSettings(**{name: value for name, value in overrides.items() if value is not None})


def _require_redis(url: str) -> None:
    from schemas.redis_check import RedisUnavailableError, check_redis

    try:
        check_redis(url)
    except RedisUnavailableError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from None


def _serve_metrics(port: int) -> None:
    """/metrics on ``port`` (an operations port; 0: none), or exit 1 when the port is taken."""
    if not port:
        return
    from prometheus_client import start_http_server

    try:
        start_http_server(port)
    except OSError as error:
        console.print(f"[red]error:[/red] cannot serve /metrics on port {port}: {error}")
        raise typer.Exit(1) from None


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return stop


@app.command("projector")
def projector_command(
    bootstrap_servers: BootstrapOption = None,
    topic_prefix: TopicPrefixOption = None,
    redis_url: RedisUrlOption = None,
    redis_prefix: RedisPrefixOption = None,
    group_id: Annotated[
        str | None,
        typer.Option(
            help="Kafka consumer group (env PARCELSTREAM_PROJECTOR_GROUP_ID; default parcelstream-projector)."
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Port of /metrics; 0 serves none (env PARCELSTREAM_PROJECTOR_METRICS_PORT; default 9103)."),
    ] = None,
    movements: Annotated[
        bool | None,
        typer.Option(
            "--movements/--no-movements",
            help="Also read manifests and unit scans for the movement board (env PARCELSTREAM_PROJECTOR_MOVEMENTS; "
            "default on).",
        ),
    ] = None,
    movement_retention_days: Annotated[
        float | None,
        typer.Option(
            min=0.01,
            help="Days the movement board keeps a movement after its last record "
            "(env PARCELSTREAM_MOVEMENT_RETENTION_DAYS; default 14).",
        ),
    ] = None,
    estimate_move_threshold_hours: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="Hours the estimated delivery window's start or end must shift by before the tracking page "
            "says it moved, and why (env PARCELSTREAM_ESTIMATE_MOVE_THRESHOLD_HOURS; default 12).",
        ),
    ] = None,
) -> None:
    """Keep the Redis read model in step with the parcel-state topic (and the movement board with the
    manifests and unit scans); runs until Ctrl-C / SIGTERM.

    Postcode hashes are keyed with PARCELSTREAM_POSTCODE_KEY (or PARCELSTREAM_TRACKING_SECRET), as tracking's."""
    from consumers.projector import Projector, ProjectorError

    settings = _settings(
        bootstrap_servers=bootstrap_servers,
        topic_prefix=topic_prefix,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        projector_group_id=group_id,
        projector_metrics_port=metrics_port,
        projector_movements=movements,
        movement_retention_days=movement_retention_days,
        estimate_move_threshold_hours=estimate_move_threshold_hours,
    )
    _require_redis(settings.redis_url)
    _serve_metrics(settings.projector_metrics_port)
    if not settings.postcode_hash_key:
        console.print(
            "[yellow]warning:[/yellow] no PARCELSTREAM_POSTCODE_KEY or PARCELSTREAM_TRACKING_SECRET: "
            "no postcode hashes are stored, postcode look-ups are off"
        )
    stop = _stop_on_signals()
    console.print(
        f"projector: {settings.topics.parcel_state} → {settings.redis_url} (keys {settings.redis_prefix}:*), "
        f"group {settings.projector_group_id}"
        + (f", /metrics on :{settings.projector_metrics_port}" if settings.projector_metrics_port else "")
    )
    projector = Projector(settings, log=console.print)
    try:
        stats = projector.run(stop)
    except ProjectorError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from None
    console.print(f"projector stopped: {stats.summary()}")


@app.command("tracking")
def tracking_command(
    host: Annotated[
        str | None, typer.Option(help="Interface to listen on (env PARCELSTREAM_TRACKING_HOST; default 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (env PARCELSTREAM_TRACKING_PORT; default 8080).")] = None,
    redis_url: RedisUrlOption = None,
    redis_prefix: RedisPrefixOption = None,
    secret: SecretOption = None,
    operations_key: Annotated[
        str | None,
        typer.Option(help="API key of /v1/operations/* (env PARCELSTREAM_OPERATIONS_KEY; default none: disabled)."),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            help="Operations port of /metrics, never the public port; 0 serves none "
            "(env PARCELSTREAM_TRACKING_METRICS_PORT; default 9106)."
        ),
    ] = None,
    max_failed_lookups_per_parcel: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Failed look-ups of one tracking number per window, then only its signed link works "
            "(env PARCELSTREAM_TRACKING_MAX_FAILED_LOOKUPS_PER_PARCEL; default 10).",
        ),
    ] = None,
    max_failed_lookups_per_client: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Failed look-ups of one client address per window, across parcels "
            "(env PARCELSTREAM_TRACKING_MAX_FAILED_LOOKUPS_PER_CLIENT; default 30).",
        ),
    ] = None,
    failed_lookup_window: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Seconds the failed look-ups are counted from the first one "
            "(env PARCELSTREAM_TRACKING_FAILED_LOOKUP_WINDOW; default 900).",
        ),
    ] = None,
    max_streams: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Live-update streams open in this process (503 beyond) "
            "(env PARCELSTREAM_TRACKING_MAX_STREAMS; default 1000).",
        ),
    ] = None,
    max_streams_per_client: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Live-update streams per client address (429 beyond) "
            "(env PARCELSTREAM_TRACKING_MAX_STREAMS_PER_CLIENT; default 4).",
        ),
    ] = None,
) -> None:
    """Serve the tracking API, live updates, the customer tracking page and the merchants' subscriptions API
    (with /healthz; /metrics on the operations port).

    Environment only: PARCELSTREAM_POSTCODE_KEY (postcode hashes, as the projector's; else from the secret).

    Limits and defences: docs/reliability.md."""
    import uvicorn

    from consumers.tracking.app import create_app

    settings = _settings(
        tracking_host=host,
        tracking_port=port,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        tracking_secret=secret,
        operations_key=operations_key,
        tracking_metrics_port=metrics_port,
        tracking_max_failed_lookups_per_parcel=max_failed_lookups_per_parcel,
        tracking_max_failed_lookups_per_client=max_failed_lookups_per_client,
        tracking_failed_lookup_window=failed_lookup_window,
        tracking_max_streams=max_streams,
        tracking_max_streams_per_client=max_streams_per_client,
    )
    _require_redis(settings.redis_url)
    if not settings.tracking_secret:
        console.print("[yellow]warning:[/yellow] no PARCELSTREAM_TRACKING_SECRET: signed links are off")
    if not settings.postcode_hash_key:
        console.print(
            "[yellow]warning:[/yellow] no PARCELSTREAM_POSTCODE_KEY or PARCELSTREAM_TRACKING_SECRET: postcodes are off"
        )
    _serve_metrics(settings.tracking_metrics_port)
    if not settings.operations_key:
        console.print("[yellow]warning:[/yellow] no PARCELSTREAM_OPERATIONS_KEY: the operations API answers 503")
    console.print(
        f"tracking: http://{settings.tracking_host}:{settings.tracking_port}/ (keys {settings.redis_prefix}:*)"
        + (f", /metrics on :{settings.tracking_metrics_port}" if settings.tracking_metrics_port else "")
    )
    config = uvicorn.Config(
        create_app(settings),
        host=settings.tracking_host,
        port=settings.tracking_port,
        log_level="warning",
        timeout_graceful_shutdown=3,  # open live-update streams would otherwise hold the shutdown
    )
    server = uvicorn.Server(config)
    server.run()
    if not server.started:
        console.print(f"[red]error:[/red] could not listen on {settings.tracking_host}:{settings.tracking_port}")
        raise typer.Exit(1)


@app.command("tracking-link")
def tracking_link_command(
    tracking_number: Annotated[str, typer.Argument(help="The parcel's tracking number.")],
    secret: SecretOption = None,
    base_url: Annotated[
        str | None,
        typer.Option(help="Public base URL (env PARCELSTREAM_TRACKING_BASE_URL; default http://127.0.0.1:8080)."),
    ] = None,
    lang: Annotated[str | None, typer.Option(help="Page language: " + ", ".join(i18n.LANGUAGES) + ".")] = None,
) -> None:
    """Print the signed tracking-page link of a parcel."""
    from consumers.tracking.tokens import tracking_link

    settings = _settings(tracking_secret=secret, tracking_base_url=base_url)
    try:
        normalized = normalize_tracking_number(tracking_number)
    except InvalidRecordError as error:
        console.print(f"[red]error:[/red] {error.reason}")
        raise typer.Exit(2) from None
    if not settings.tracking_secret:
        console.print("[red]error:[/red] no secret: set PARCELSTREAM_TRACKING_SECRET or pass --secret")
        raise typer.Exit(2)
    if lang is not None and lang not in i18n.LANGUAGES:
        console.print(f"[red]error:[/red] --lang must be one of {', '.join(i18n.LANGUAGES)}")
        raise typer.Exit(2)
    print(tracking_link(settings.tracking_base_url, settings.tracking_secret, normalized, lang))


def _add_notifier_commands() -> None:
    # The notifier keeps its own commands (notifier, subscriptions); they live under this stage's app.
    from consumers.notifier.cli import app as notifier_app

    app.add_typer(notifier_app)


_add_notifier_commands()
