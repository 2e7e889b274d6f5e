"""Notifier commands: ``parcelstream notifier``, ``parcelstream subscriptions add|list|remove|test`` and
``parcelstream merchant-keys create|list|revoke`` (the keys of the subscriptions API).

Options default to the ``PARCELSTREAM_*`` environment variables (see ``NotifierSettings``).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from datetime import UTC, datetime
from typing import Annotated, Any

import redis
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Column, Table

from consumers.notifier.egress import egress_client
from consumers.notifier.merchant_keys import MerchantKeyError, MerchantKeyStore
from consumers.notifier.messages import LANGUAGES, SAMPLE_UPDATE
from consumers.notifier.model import SubscriptionError, jobs_for_update, mask_address, new_subscription
from consumers.notifier.policy import Verdict
from consumers.notifier.senders import EmailSender, WebhookSender
from consumers.notifier.service import ConsumerThreadError, run_notifier, serve_metrics
from consumers.notifier.settings import NotifierSettings
from consumers.notifier.store import SubscriptionStore

console = Console(stderr=True)
out = Console()
app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
subscriptions_app = typer.Typer(
    help="Who gets notified of which parcels' status changes: webhooks and e-mail.", no_args_is_help=True
)
app.add_typer(subscriptions_app, name="subscriptions")
merchant_keys_app = typer.Typer(
    help="Merchants' API keys for the subscriptions API of the tracking service (stored hashed in Redis).",
    no_args_is_help=True,
)
app.add_typer(merchant_keys_app, name="merchant-keys")

REDIS_URL_HELP = "Redis URL (env PARCELSTREAM_REDIS_URL; default redis://127.0.0.1:6379/0)."
REDIS_PREFIX_HELP = "Redis key prefix (env PARCELSTREAM_REDIS_PREFIX; default parcelstream)."


def _settings(**overrides: Any) -> NotifierSettings:
    try:
        return NotifierSettings(**{name: value for name, value in overrides.items() if value is not None})
    except ValidationError as error:
        first = error.errors()[0]
        where = f"PARCELSTREAM_{str(first['loc'][0]).upper()}" if first["loc"] else "settings"
        raise _fail(f"invalid {where}: {first['msg']}") from None


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(1)


def _redis(settings: NotifierSettings) -> redis.Redis:
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=3, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as error:
        raise _fail(f"Redis at {settings.redis_url} does not answer ({error})") from None
    return client


def _store(settings: NotifierSettings) -> SubscriptionStore:
    return SubscriptionStore(_redis(settings), settings.redis_prefix)


def _key_store(redis_url: str | None, redis_prefix: str | None) -> MerchantKeyStore:
    settings = _settings(redis_url=redis_url, redis_prefix=redis_prefix)
    return MerchantKeyStore(_redis(settings), settings.redis_prefix)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _time(ms: int | None) -> str:
    return "" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@subscriptions_app.command("add")
def add(
    merchant: str | None = typer.Option(None, help="Notify about every parcel of this merchant."),
    tracking_number: str | None = typer.Option(None, help="Notify about this one parcel (a recipient)."),
    webhook: str | None = typer.Option(None, help="Deliver by signed HTTP POST to this URL."),
    email: str | None = typer.Option(None, help="Deliver by e-mail to this address."),
    secret: str | None = typer.Option(None, help="Webhook signing secret; a random one is made and shown once."),
    language: str = typer.Option("en", help=f"Language of e-mails: {', '.join(LANGUAGES)}."),
    status: Annotated[
        list[str] | None, typer.Option("--status", help="Only these statuses (repeat the option); default all.")
    ] = None,
    redis_url: str | None = typer.Option(None, help=REDIS_URL_HELP),
    redis_prefix: str | None = typer.Option(None, help=REDIS_PREFIX_HELP),
) -> None:
    """Add a subscription for a merchant or a tracking number, by webhook or e-mail."""
    if (merchant is None) == (tracking_number is None):
        raise _fail("give exactly one of --merchant and --tracking-number")
    if (webhook is None) == (email is None):
        raise _fail("give exactly one of --webhook and --email")
    try:
        subscription = new_subscription(
            scope="merchant" if merchant is not None else "tracking_number",
            target=merchant if merchant is not None else str(tracking_number),
            channel="webhook" if webhook is not None else "email",
            address=webhook if webhook is not None else str(email),
            secret=secret,
            language=language,
            statuses=status or (),
            created_ms=time.time_ns() // 1_000_000,
        )
    except SubscriptionError as error:
        raise _fail(str(error)) from None
    _store(_settings(redis_url=redis_url, redis_prefix=redis_prefix)).add(subscription)
    out.print(subscription.subscription_id)
    if subscription.channel == "webhook" and secret is None:
        console.print(f"signing secret (shown only now): {subscription.secret}")
    console.print(f"added {subscription.describe()}")


@subscriptions_app.command("list")
def list_(
    merchant: str | None = typer.Option(None, help="Only this merchant's subscriptions."),
    tracking_number: str | None = typer.Option(None, help="Only this tracking number's subscriptions."),
    redis_url: str | None = typer.Option(None, help=REDIS_URL_HELP),
    redis_prefix: str | None = typer.Option(None, help=REDIS_PREFIX_HELP),
) -> None:
    """List subscriptions (addresses masked, secrets never shown)."""
    subscriptions = _store(_settings(redis_url=redis_url, redis_prefix=redis_prefix)).all()
    if merchant is not None:
        subscriptions = [s for s in subscriptions if s.scope == "merchant" and s.target == merchant]
    if tracking_number is not None:
        subscriptions = [s for s in subscriptions if s.scope == "tracking_number" and s.target == tracking_number]
    table = Table("scope", "target", "channel", "address", "language", "statuses")
    table.columns.insert(0, Column("id", no_wrap=True, min_width=16))
    for s in sorted(subscriptions, key=lambda s: (s.scope, s.target, s.created_ms)):
        statuses = ", ".join(sorted(s.statuses)) or "all"
        table.add_row(
            s.subscription_id, s.scope, s.target, s.channel, mask_address(s.channel, s.address), s.language, statuses
        )
    out.print(table)
    console.print(f"{len(subscriptions)} subscription(s)")


@subscriptions_app.command("remove")
def remove(
    subscription_id: str = typer.Argument(..., help="The id printed by `subscriptions add`."),
    redis_url: str | None = typer.Option(None, help=REDIS_URL_HELP),
    redis_prefix: str | None = typer.Option(None, help=REDIS_PREFIX_HELP),
) -> None:
    """Remove a subscription (notifications already queued for it are still delivered)."""
    removed = _store(_settings(redis_url=redis_url, redis_prefix=redis_prefix)).remove(subscription_id)
    if removed is None:
        raise _fail(f"no subscription {subscription_id}")
    console.print(f"removed {removed.describe()}")


@subscriptions_app.command("test")
def test(
    subscription_id: str = typer.Argument(..., help="The id printed by `subscriptions add`."),
    redis_url: str | None = typer.Option(None, help=REDIS_URL_HELP),
    redis_prefix: str | None = typer.Option(None, help=REDIS_PREFIX_HELP),
    smtp_host: str | None = typer.Option(None, help="SMTP server (env PARCELSTREAM_SMTP_HOST; default 127.0.0.1)."),
    smtp_port: int | None = typer.Option(None, help="SMTP port (env PARCELSTREAM_SMTP_PORT; default 25)."),
    timeout: float = typer.Option(10.0, help="Seconds to wait for the endpoint."),
) -> None:
    """Send one test notification with a sample payload, right now, and report the endpoint's answer."""
    settings = _settings(redis_url=redis_url, redis_prefix=redis_prefix, smtp_host=smtp_host, smtp_port=smtp_port)
    subscription = _store(settings).get(subscription_id)
    if subscription is None:
        raise _fail(f"no subscription {subscription_id}")
    sample = dict(SAMPLE_UPDATE, update_id=f"test-{time.time_ns()}", status=_sample_status(subscription.statuses))
    sample["tracking_number" if subscription.scope == "tracking_number" else "merchant"] = subscription.target
    (job,) = jobs_for_update(sample, [subscription], time.time_ns() // 1_000_000)

    async def send_once() -> Any:
        if job.channel == "email":
            return await EmailSender(settings.smtp_host, settings.smtp_port, settings.smtp_from, timeout).send(job)
        async with egress_client(settings.egress_policy, timeout) as client:
            return await WebhookSender(client).send(job)

    result = asyncio.run(send_once())
    if result.verdict is not Verdict.SENT:
        raise _fail(f"test delivery to {mask_address(job.channel, job.address)} failed: {result.detail}")
    console.print(f"test delivery to {mask_address(job.channel, job.address)} succeeded ({result.detail})")


@merchant_keys_app.command("create")
def merchant_keys_create(
    merchant: str = typer.Option(..., help="The merchant, exactly as in its parcels' data (e.g. 'Gaufres & Co')."),
    redis_url: str | None = typer.Option(None, help=REDIS_URL_HELP),
    redis_prefix: str | None = typer.Option(None, help=REDIS_PREFIX_HELP),
) -> None:
    """Create an API key for a merchant. The key is printed once and stored only as a hash."""
    try:
        issued = _key_store(redis_url, redis_prefix).create(merchant, _now_ms())
    except MerchantKeyError as error:
        raise _fail(str(error)) from None
    console.print(
        f"created key {issued.merchant_key.key_id} for merchant {issued.merchant_key.merchant!r}. "
        "Give the merchant this key now: it is not shown again.",
        highlight=False,
    )
    typer.echo(issued.key)  # plain, never wrapped: scripts read it


@merchant_keys_app.command("list")
def merchant_keys_list(
    merchant: str | None = typer.Option(None, help="Only this merchant's keys."),
    redis_url: str | None = typer.Option(None, help=REDIS_URL_HELP),
    redis_prefix: str | None = typer.Option(None, help=REDIS_PREFIX_HELP),
) -> None:
    """List merchant API keys (ids, merchants, state); the keys themselves are never stored."""
    keys = _key_store(redis_url, redis_prefix).list()
    if merchant is not None:
        keys = [key for key in keys if key.merchant == merchant.strip()]
    table = Table("merchant", "created", "state")
    table.columns.insert(0, Column("key id", no_wrap=True, min_width=16))
    for key in keys:
        state = "active" if key.active else f"revoked {_time(key.revoked_ms)}"
        table.add_row(key.key_id, key.merchant, _time(key.created_ms), state)
    out.print(table)
    console.print(f"{len(keys)} key(s), {sum(key.active for key in keys)} active")


@merchant_keys_app.command("revoke")
def merchant_keys_revoke(
    key_id: str = typer.Argument(..., help="Id of the key (see `merchant-keys list`)."),
    redis_url: str | None = typer.Option(None, help=REDIS_URL_HELP),
    redis_prefix: str | None = typer.Option(None, help=REDIS_PREFIX_HELP),
) -> None:
    """Revoke a merchant API key: from now on requests with it get 401 (its subscriptions stay)."""
    try:
        revoked = _key_store(redis_url, redis_prefix).revoke(key_id, _now_ms())
    except MerchantKeyError as error:
        raise _fail(str(error)) from None
    console.print(
        f"revoked key {revoked.key_id} of merchant {revoked.merchant!r} at {_time(revoked.revoked_ms)}", highlight=False
    )


def _sample_status(statuses: frozenset[str]) -> str:
    return SAMPLE_UPDATE["status"] if not statuses or SAMPLE_UPDATE["status"] in statuses else sorted(statuses)[0]


@app.command("notifier")
def notifier(
    bootstrap_servers: str | None = typer.Option(
        None, help="Kafka bootstrap servers (env PARCELSTREAM_BOOTSTRAP_SERVERS; default 127.0.0.1:9092)."
    ),
    topic_prefix: str | None = typer.Option(
        None, help="Topic prefix (env PARCELSTREAM_TOPIC_PREFIX; default parcelstream)."
    ),
    redis_url: str | None = typer.Option(None, help=REDIS_URL_HELP),
    redis_prefix: str | None = typer.Option(None, help=REDIS_PREFIX_HELP),
    group_id: str | None = typer.Option(
        None, help="Consumer group (env PARCELSTREAM_NOTIFIER_GROUP_ID; default parcelstream-notifier)."
    ),
    metrics_port: int | None = typer.Option(
        None, help="Prometheus /metrics port, 0 for none (env PARCELSTREAM_NOTIFIER_METRICS_PORT; default 9104)."
    ),
    max_retries: int | None = typer.Option(
        None, help="Retries before dead-lettering (env PARCELSTREAM_NOTIFIER_MAX_RETRIES; default 14)."
    ),
    retry_base_delay: float | None = typer.Option(
        None,
        help="Seconds before the 1st retry, then doubling (env PARCELSTREAM_NOTIFIER_RETRY_BASE_DELAY_S; default 30).",
    ),
    request_timeout: float | None = typer.Option(
        None,
        help="Seconds per webhook request or SMTP session (env PARCELSTREAM_NOTIFIER_REQUEST_TIMEOUT_S; default 10).",
    ),
    rate_per_endpoint: float | None = typer.Option(
        None, help="Deliveries per second per endpoint (env PARCELSTREAM_NOTIFIER_RATE_PER_ENDPOINT; default 20)."
    ),
    smtp_host: str | None = typer.Option(None, help="SMTP server (env PARCELSTREAM_SMTP_HOST; default 127.0.0.1)."),
    smtp_port: int | None = typer.Option(None, help="SMTP port (env PARCELSTREAM_SMTP_PORT; default 25)."),
    smtp_from: str | None = typer.Option(None, help="Sender address of e-mails (env PARCELSTREAM_SMTP_FROM)."),
    egress_allow: str | None = typer.Option(
        None,
        help="Networks webhooks may reach although not public, comma-separated, e.g. 127.0.0.1/32 for a local "
        "receiver; plain http:// only to these (env PARCELSTREAM_NOTIFIER_EGRESS_ALLOW; default: none, public "
        "HTTPS only).",
    ),
) -> None:
    """Deliver customer notifications: read status-updates, queue them in Redis, send webhooks and e-mails.

    Erasures from parcel-commands delete the parcel's subscriptions, queued notifications and idempotency keys.

    Runs until Ctrl-C or SIGTERM, then finishes the deliveries in flight and prints a summary.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = _settings(
        bootstrap_servers=bootstrap_servers,
        topic_prefix=topic_prefix,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        notifier_group_id=group_id,
        notifier_metrics_port=metrics_port,
        notifier_max_retries=max_retries,
        notifier_retry_base_delay_s=retry_base_delay,
        notifier_request_timeout_s=request_timeout,
        notifier_rate_per_endpoint=rate_per_endpoint,
        smtp_host=smtp_host,
        smtp_port=smtp_port,
        smtp_from=smtp_from,
        notifier_egress_allow=egress_allow,
    )
    _store(settings)  # fail early, in one line, when Redis is down
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        metrics_server = serve_metrics(settings.notifier_metrics_port)
    except OSError as error:
        raise _fail(
            f"cannot serve metrics on port {settings.notifier_metrics_port} ({error}); pick another with --metrics-port"
        ) from None
    console.print(
        f"notifier: {settings.topics.status_updates} → webhooks and e-mail, {settings.topics.parcel_commands} → "
        f"erasures (group {settings.notifier_group_id}); Ctrl-C stops"
    )
    try:
        summary = run_notifier(settings, stop)
    except ConsumerThreadError as error:
        raise _fail(str(error)) from None
    finally:
        if metrics_server is not None:
            metrics_server.shutdown()
    console.print(f"notifier stopped: {summary.line()}")


if __name__ == "__main__":
    app()
