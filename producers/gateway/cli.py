"""``parcelstream gateway`` (the HTTP ingest gateway) and ``parcelstream keys ...`` (carriers' API keys).

Mount at the CLI root with ``app.add_typer(producers.gateway.cli.app)``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from producers.gateway.settings import GatewaySettings

app = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
keys_app = typer.Typer(
    help="Carriers' API keys for the ingest gateway (stored hashed in Redis).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(keys_app, name="keys")
err_console = Console(stderr=True, highlight=False, soft_wrap=True)
out_console = Console(highlight=False, soft_wrap=True)
T = TypeVar("T")


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}", markup=True)
    return typer.Exit(1)


def _settings(**flags: Any) -> GatewaySettings:
    """Settings from PARCELSTREAM_* variables, with the flags given on the command line winning."""
    try:
        return GatewaySettings(**{name: value for name, value in flags.items() if value is not None})
    except ValidationError as error:
        first = error.errors()[0]
        where = f"PARCELSTREAM_{str(first['loc'][0]).upper()}" if first["loc"] else "settings"
        raise _fail(f"invalid {where}: {first['msg']}") from None


def _with_store(settings: GatewaySettings, action: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``action(KeyStore)`` against the configured Redis; one-line error when it does not answer."""
    import redis.exceptions
    from redis.asyncio import Redis

    from producers.gateway.keys import KeyStore

    async def run() -> T:
        client = Redis.from_url(settings.redis_url, decode_responses=True, socket_connect_timeout=5)
        try:
            return await action(KeyStore(client, settings.redis_prefix))
        finally:
            await client.aclose()

    try:
        return asyncio.run(run())
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
        raise _fail(f"Redis at {settings.redis_url} does not answer ({error}); set PARCELSTREAM_REDIS_URL") from None


def _time(ms: int | None) -> str:
    return "" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


RedisUrl = Annotated[
    str | None,
    typer.Option(help="Redis URL. Default: $PARCELSTREAM_REDIS_URL or redis://127.0.0.1:6379/0.", show_default=False),
]
RedisPrefix = Annotated[
    str | None,
    typer.Option(help="Redis key prefix. Default: $PARCELSTREAM_REDIS_PREFIX or parcelstream.", show_default=False),
]


@keys_app.command("create")
def keys_create(
    carrier: Annotated[str, typer.Option(help="Carrier code the key publishes for (e.g. CK).", show_default=False)],
    source: Annotated[
        list[str],
        typer.Option(
            "--source",
            "--sources",
            help="Scan source the key may publish (repeat, or comma-separated: --sources flight,warehouse).",
            min=1,
        ),
    ],
    codes: Annotated[
        list[str] | None,
        typer.Option(
            "--codes",
            "--code",
            help="Scan codes the key may publish (repeat, or comma-separated). Default: every code but "
            "ORDER_CREATED. Only a key granted ORDER_CREATED (shipper, merchant, warehouse) may set shipment "
            "facts (merchant, destination).",
            show_default=False,
        ),
    ] = None,
    redis_url: RedisUrl = None,
    redis_prefix: RedisPrefix = None,
) -> None:
    """Create an API key for a carrier. The key is printed once and stored only as a hash."""
    from producers.gateway.keys import ApiKeyError

    settings = _settings(redis_url=redis_url, redis_prefix=redis_prefix)
    sources = [name.strip() for item in source for name in item.split(",") if name.strip()]
    try:
        issued = _with_store(settings, lambda store: store.create(carrier, sources, codes or []))
    except ApiKeyError as error:
        raise _fail(str(error)) from None
    err_console.print(
        f"created key [bold]{issued.api_key.key_id}[/bold] for carrier {carrier} "
        f"(sources {', '.join(issued.api_key.sources)}; codes {issued.api_key.codes_shown}). "
        "Give the carrier this key now: it is not shown again.",
        markup=True,
    )
    out_console.print(issued.key, markup=False)


@keys_app.command("list")
def keys_list(redis_url: RedisUrl = None, redis_prefix: RedisPrefix = None) -> None:
    """List API keys (ids, carriers, sources, codes, state); the keys themselves are never stored."""
    settings = _settings(redis_url=redis_url, redis_prefix=redis_prefix)
    keys = _with_store(settings, lambda store: store.list())
    table = Table(title=f"API keys under '{settings.redis_prefix}'", title_justify="left")
    for column in ("key id", "carrier", "sources", "codes", "created", "state"):
        table.add_column(column, no_wrap=column in ("key id", "carrier"), overflow="fold")
    for key in keys:
        state = "active" if key.active else f"revoked {_time(key.revoked_ms)}"
        table.add_row(key.key_id, key.carrier, ", ".join(key.sources), key.codes_shown, _time(key.created_ms), state)
    out_console.print(table)
    err_console.print(f"{len(keys)} key(s), {sum(key.active for key in keys)} active")


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="Id of the key (see `keys list`).", show_default=False)],
    redis_url: RedisUrl = None,
    redis_prefix: RedisPrefix = None,
) -> None:
    """Revoke an API key: from now on requests with it get 401."""
    from producers.gateway.keys import ApiKeyError

    settings = _settings(redis_url=redis_url, redis_prefix=redis_prefix)
    try:
        revoked = _with_store(settings, lambda store: store.revoke(key_id))
    except ApiKeyError as error:
        raise _fail(str(error)) from None
    err_console.print(f"revoked key {revoked.key_id} of carrier {revoked.carrier} at {_time(revoked.revoked_ms)}")


@app.command("gateway")
def gateway(
    host: Annotated[
        str | None,
        typer.Option(
            help="Interface to listen on. Default: $PARCELSTREAM_GATEWAY_HOST or 127.0.0.1.", show_default=False
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(help="Port to listen on. Default: $PARCELSTREAM_GATEWAY_PORT or 8081.", show_default=False),
    ] = None,
    metrics_port: Annotated[
        int,
        typer.Option(
            help="Operations port of /metrics (never served on the public gateway port); 0: none.",
            envvar=["PARCELSTREAM_GATEWAY_METRICS_PORT", "PARCELSTREAM_METRICS_PORT"],
        ),
    ] = 9102,
    bootstrap_servers: Annotated[
        str | None,
        typer.Option(
            help="Kafka bootstrap servers. Default: $PARCELSTREAM_BOOTSTRAP_SERVERS or 127.0.0.1:9092.",
            show_default=False,
        ),
    ] = None,
    topic_prefix: Annotated[
        str | None,
        typer.Option(
            help="Topic name prefix. Default: $PARCELSTREAM_TOPIC_PREFIX or parcelstream.", show_default=False
        ),
    ] = None,
    redis_url: RedisUrl = None,
    redis_prefix: RedisPrefix = None,
    delivery_timeout: Annotated[
        float | None,
        typer.Option(
            help="Seconds the broker has to acknowledge a batch before the request gets 503. "
            "Default: $PARCELSTREAM_GATEWAY_DELIVERY_TIMEOUT or 5.",
            show_default=False,
        ),
    ] = None,
    max_body_bytes: Annotated[
        int | None,
        typer.Option(
            help="Largest request body (413 beyond). Default: $PARCELSTREAM_GATEWAY_MAX_BODY_BYTES or 5000000.",
            show_default=False,
        ),
    ] = None,
    max_records: Annotated[
        int | None,
        typer.Option(
            help="Most records per request (413 beyond). Default: $PARCELSTREAM_GATEWAY_MAX_RECORDS or 1000.",
            show_default=False,
        ),
    ] = None,
    rate_limit: Annotated[
        float | None,
        typer.Option(
            help="Records per second per carrier, shared by all gateway processes through Redis (429 beyond). "
            "Default: $PARCELSTREAM_GATEWAY_RATE_LIMIT or 500.",
            show_default=False,
        ),
    ] = None,
    burst: Annotated[
        int | None,
        typer.Option(
            help="Records a carrier may send at once (at least --max-records). Default: $PARCELSTREAM_GATEWAY_BURST "
            "or 5000.",
            show_default=False,
        ),
    ] = None,
    max_future: Annotated[
        float | None,
        typer.Option(
            help="Seconds an event time may lie ahead of now (422 beyond). Default: $PARCELSTREAM_MAX_FUTURE or 86400.",
            show_default=False,
        ),
    ] = None,
    max_age: Annotated[
        float | None,
        typer.Option(
            help="Seconds an event time may lie behind now (422 beyond). Default: $PARCELSTREAM_MAX_AGE or 31536000.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the HTTP ingest gateway for carriers' scans (API keys: `keys create`).

    Carriers POST batches of native records to /v1/scans or documents in their own format to
    /v1/formats/{format}; OpenAPI at /openapi.json and /healthz on the same port, /metrics on the
    operations port (--metrics-port).
    """
    import redis
    import uvicorn
    from prometheus_client import start_http_server

    from producers.gateway.app import create_app
    from producers.publish import PublishSetupError, check_broker

    settings = _settings(
        gateway_host=host,
        gateway_port=port,
        bootstrap_servers=bootstrap_servers,
        topic_prefix=topic_prefix,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        gateway_delivery_timeout=delivery_timeout,
        gateway_max_body_bytes=max_body_bytes,
        gateway_max_records=max_records,
        gateway_rate_limit=rate_limit,
        gateway_burst=burst,
        max_future=max_future,
        max_age=max_age,
    )
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=5)
    try:
        client.ping()
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
        raise _fail(f"Redis at {settings.redis_url} does not answer ({error}); set PARCELSTREAM_REDIS_URL") from None
    finally:
        client.close()
    try:
        check_broker(settings.bootstrap_servers, settings.topics, max(settings.gateway_delivery_timeout, 5.0))
    except PublishSetupError as error:
        raise _fail(str(error)) from None
    if metrics_port:
        try:
            start_http_server(metrics_port)
        except OSError as error:
            raise _fail(f"cannot serve /metrics on port {metrics_port}: {error.strerror}") from None
    err_console.print(
        f"ingest gateway on http://{settings.gateway_host}:{settings.gateway_port} "
        f"(broker {settings.bootstrap_servers}, topics {settings.topic_prefix}.*, Redis {settings.redis_url}); "
        "Ctrl-C stops it"
    )
    uvicorn.run(
        create_app(settings), host=settings.gateway_host, port=settings.gateway_port, log_level="info", access_log=False
    )
    err_console.print("gateway stopped")
