"""One notifier process: the Kafka consumer (a thread) and the asyncio delivery loop, stopped together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio
from prometheus_client import start_http_server

from consumers.metrics import WORKER_UP
from consumers.notifier.consumer import ConsumerStats, UpdateConsumer
from consumers.notifier.dead_letters import DeadLetterProducer
from consumers.notifier.delivery import DeliveryLoop, DeliveryStats
from consumers.notifier.egress import egress_client
from consumers.notifier.policy import RetryPolicy
from consumers.notifier.senders import EmailSender, WebhookSender
from consumers.notifier.settings import NotifierSettings
from consumers.notifier.store import Outbox, OutboxWriter, SubscriptionStore

log = logging.getLogger(__name__)
STAGE = "notifier"


@dataclass
class NotifierSummary:
    consumer: ConsumerStats
    delivery: DeliveryStats
    pending: int

    def line(self) -> str:
        c, d = self.consumer, self.delivery
        return (
            f"{c.updates} updates read, {c.enqueued} notifications queued, {c.duplicates} duplicates skipped, "
            f"{c.dead_lettered} bad records dead-lettered, {c.erasures} parcels erased; "
            f"{d.sent} sent, {d.retried} retries, "
            f"{d.dead_lettered} dead-lettered, {self.pending} pending"
        )


def retry_policy(settings: NotifierSettings) -> RetryPolicy:
    return RetryPolicy(max_retries=settings.notifier_max_retries, base_delay_s=settings.notifier_retry_base_delay_s)


class ConsumerThreadError(RuntimeError):
    """The Kafka consumer thread stopped on an unexpected error."""


def run_notifier(
    settings: NotifierSettings,
    stop: threading.Event,
    *,
    consumer_overrides: dict[str, Any] | None = None,
    poll_interval_s: float = 0.2,
    progress_interval_s: float = 30.0,
) -> NotifierSummary:
    """Consume status-updates (and parcel-commands: erasures) and deliver notifications until ``stop``
    is set; return what was done."""
    sync_redis = redis.Redis.from_url(settings.redis_url)
    topics = settings.topics
    consumer = UpdateConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        topic=topics.status_updates,
        commands_topic=topics.parcel_commands,
        group_id=settings.notifier_group_id,
        subscriptions=SubscriptionStore(sync_redis, settings.redis_prefix),
        outbox=OutboxWriter(sync_redis, settings.redis_prefix),
        dead_letters=DeadLetterProducer(settings.bootstrap_servers, topics.dead_letters),
        consumer_overrides={
            "session.timeout.ms": settings.notifier_session_timeout_ms,
            "heartbeat.interval.ms": min(3000, settings.notifier_session_timeout_ms // 6),
            **(consumer_overrides or {}),
        },
    )
    consumer_errors: list[BaseException] = []

    def consume() -> None:
        try:
            consumer.run(stop)
        except BaseException as error:
            consumer_errors.append(error)
            stop.set()  # one half down means the process is down: let the supervisor restart it

    consumer_thread = threading.Thread(target=consume, name="notifier-consumer", daemon=True)
    consumer_thread.start()
    WORKER_UP.labels(stage=STAGE).set(1)
    try:
        summary = asyncio.run(_deliver_until_stopped(settings, stop, consumer, poll_interval_s, progress_interval_s))
    finally:
        stop.set()
        consumer_thread.join(timeout=60)
        WORKER_UP.labels(stage=STAGE).set(0)
        sync_redis.close()
    if consumer_errors:
        raise ConsumerThreadError(f"the status-updates consumer failed: {consumer_errors[0]}") from consumer_errors[0]
    return summary


async def _deliver_until_stopped(
    settings: NotifierSettings,
    stop: threading.Event,
    consumer: UpdateConsumer,
    poll_interval_s: float,
    progress_interval_s: float,
) -> NotifierSummary:
    async_redis = redis.asyncio.Redis.from_url(settings.redis_url)
    outbox = Outbox(async_redis, settings.redis_prefix)
    async with egress_client(settings.egress_policy, settings.notifier_request_timeout_s) as client:
        loop = DeliveryLoop(
            outbox,
            {
                "webhook": WebhookSender(client),
                "email": EmailSender(
                    settings.smtp_host, settings.smtp_port, settings.smtp_from, settings.notifier_request_timeout_s
                ),
            },
            retry_policy(settings),
            DeadLetterProducer(settings.bootstrap_servers, settings.topics.dead_letters),
            rate_per_endpoint=settings.notifier_rate_per_endpoint,
            endpoint_concurrency=settings.notifier_endpoint_concurrency,
            lease_s=max(60.0, 3 * settings.notifier_request_timeout_s),
            poll_interval_s=poll_interval_s,
        )
        stopping = asyncio.Event()
        watcher = asyncio.create_task(_watch(stop, stopping, consumer, loop, outbox, progress_interval_s))
        try:
            await loop.run(stopping)
        finally:
            stopping.set()
            await watcher
        pending = await outbox.pending_count()
    await async_redis.aclose()
    return NotifierSummary(consumer.stats, loop.stats, pending)


async def _watch(
    stop: threading.Event,
    stopping: asyncio.Event,
    consumer: UpdateConsumer,
    loop: DeliveryLoop,
    outbox: Outbox,
    progress_interval_s: float,
) -> None:
    """Bridge the thread-side stop flag into asyncio, and log progress now and then."""
    last_progress = time.monotonic()
    while not stop.is_set() and not stopping.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), 0.1)
        if time.monotonic() - last_progress >= progress_interval_s:
            last_progress = time.monotonic()
            summary = NotifierSummary(consumer.stats, loop.stats, await outbox.pending_count())
            log.info("notifier: %s", summary.line())
    stopping.set()


def serve_metrics(port: int) -> Any:
    """Start /metrics on ``port`` (0: none); returns the server to shut down, or None."""
    if not port:
        return None
    server, _thread = start_http_server(port)
    return server
