"""Real local endpoints for the notifier's tests: a signature-checking webhook receiver (http.server
in a thread) and an aiosmtpd SMTP server; plus helpers to publish StatusUpdates and run the notifier."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from confluent_kafka import Producer

from consumers.notifier import SignatureError, verify_signature
from consumers.notifier.delivery import DeliveryStats
from consumers.notifier.settings import NotifierSettings
from consumers.notifier.signing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER
from deploy.embedded import free_port
from schemas.codec import default_codec
from schemas.topics import KEY_PARTITIONER, TopicNames

HANG = -1  # scripted "status": never answer (until the receiver stops)


@dataclass
class Delivery:
    path: str
    body: dict[str, Any]
    idempotency_key: str
    verified: bool
    status: int
    received: float
    host: str = ""  # the Host header: the URL's host even when the notifier connected to its address


@dataclass
class WebhookReceiver:
    """Answers each path by its script (statuses in turn, then 200) and records every request."""

    secrets: dict[str, str] = field(default_factory=dict)
    scripts: dict[str, list[int]] = field(default_factory=dict)
    requests: list[Delivery] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None

    def url(self, path: str, secret: str, script: list[int] | None = None) -> str:
        self.secrets[path] = secret
        self.scripts[path] = list(script or [])
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def handle(self, path: str, body: bytes, headers: Any) -> int:
        import json

        with self._lock:
            script = self.scripts.get(path, [])
            status = script.pop(0) if script else 200
        if status == HANG:
            self._stopping.wait(60)
            return 503
        try:
            verify_signature(self.secrets.get(path, ""), body, headers.get(SIGNATURE_HEADER, ""), now=time.time())
            verified = True
        except SignatureError:
            verified = False
        with self._lock:
            self.requests.append(
                Delivery(
                    path,
                    json.loads(body),
                    headers.get(IDEMPOTENCY_HEADER, ""),
                    verified,
                    status,
                    time.monotonic(),
                    headers.get("Host", ""),
                )
            )
        return status

    def delivered(self, path: str) -> list[Delivery]:
        """Requests to ``path`` answered 2xx, in arrival order."""
        with self._lock:
            return [r for r in self.requests if r.path == path and 200 <= r.status < 300]

    def attempts(self, path: str) -> list[Delivery]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = receiver.handle(self.path, body, self.headers)
                with contextlib.suppress(OSError):
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()


class MailCollector:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[arg-type]
        return "250 Message accepted"


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, MailCollector]]:
    collector = MailCollector()
    port = free_port()
    controller = Controller(collector, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, collector
    finally:
        controller.stop()


def status_update(tracking_number: str, sequence: int, status: str, merchant: str | None = None) -> dict[str, Any]:
    return {
        "update_id": f"{tracking_number}-{sequence}",
        "tracking_number": tracking_number,
        "status": status,
        "sub_status": f"{status}_001",
        "previous_status": None,
        "event_id": f"scan-{uuid.uuid4().hex[:8]}",
        "event_time_ms": 1_790_000_000_000 + sequence * 60_000,
        "utc_offset_minutes": 60,
        "location": {"code": "LGG", "kind": "airport", "country": "BE", "name": "Liège Airport"},
        "estimated_delivery": None,
        "on_time": True,
        "carrier": "CK",
        "route": "HGH-LGG",
        "merchant": merchant,
        "sequence": sequence,
    }


def publish_updates(bootstrap_servers: str, topic: str, updates: list[dict[str, Any]]) -> None:
    codec = default_codec()
    producer = Producer({"bootstrap.servers": bootstrap_servers, "partitioner": KEY_PARTITIONER, "log_level": 3})
    for update in updates:
        producer.produce(topic, key=update["tracking_number"].encode(), value=codec.encode("StatusUpdate", update))
    assert producer.flush(30) == 0


@pytest.fixture
def settings_factory(
    bootstrap_servers: str, topics: TopicNames, redis_url: str, redis_prefix: str
) -> Callable[..., NotifierSettings]:
    """Notifier settings for this test's topics and Redis prefix, with fast retries."""

    def make(**overrides: Any) -> NotifierSettings:
        values: dict[str, Any] = {
            "bootstrap_servers": bootstrap_servers,
            "topic_prefix": topics.prefix,
            "redis_url": redis_url,
            "redis_prefix": redis_prefix,
            "notifier_group_id": f"notifier-{uuid.uuid4().hex[:8]}",
            "notifier_metrics_port": 0,
            "notifier_max_retries": 3,
            "notifier_retry_base_delay_s": 0.05,
            "notifier_request_timeout_s": 1.0,
            "notifier_rate_per_endpoint": 200.0,
            # The receivers below listen on loopback: allow-listed, as an operator of a local receiver would.
            "notifier_egress_allow": "127.0.0.1/32,::1/128",
        }
        values.update(overrides)
        return NotifierSettings(**values)

    return make


def run_in_thread(coroutine_factory: Callable[[asyncio.Event], Any]) -> tuple[Callable[[], None], threading.Thread]:
    """Run ``coroutine_factory(stop_event)`` on its own event loop; returns (stop, thread)."""
    loop = asyncio.new_event_loop()
    stop_event = asyncio.Event()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            loop.run_until_complete(coroutine_factory(stop_event))
        except BaseException as error:
            errors.append(error)
        finally:
            loop.close()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()

    def stop() -> None:
        if not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop_event.set)
        thread.join(timeout=30)
        assert not thread.is_alive(), "the delivery loop did not stop"
        if errors:
            raise errors[0]

    return stop, thread


@dataclass
class DeliveryStack:
    """The delivery loop running on its own thread, and the outbox writer the consumer would use."""

    settings: NotifierSettings
    writer: Any
    subscriptions: Any
    stats: DeliveryStats = field(default_factory=DeliveryStats)

    def enqueue_update(self, update: dict[str, Any]) -> int:
        """What the Kafka consumer does for one StatusUpdate: jobs for every matching subscription."""
        from consumers.notifier.model import jobs_for_update

        candidates = self.subscriptions.for_update(update.get("merchant"), update["tracking_number"])
        return sum(self.writer.enqueue(job) for job in jobs_for_update(update, candidates, int(time.time() * 1000)))

    def pending(self) -> int:
        return sum(1 for _ in self.writer.client.scan_iter(match=self.writer.keys.job_prefix() + "*"))


@pytest.fixture
def delivery_stack_factory(redis_url: str) -> Iterator[Callable[[NotifierSettings], DeliveryStack]]:
    import redis
    import redis.asyncio

    from consumers.notifier.dead_letters import DeadLetterProducer
    from consumers.notifier.delivery import DeliveryLoop
    from consumers.notifier.egress import egress_client
    from consumers.notifier.senders import EmailSender, WebhookSender
    from consumers.notifier.service import retry_policy
    from consumers.notifier.store import Outbox, OutboxWriter, SubscriptionStore

    stoppers: list[Callable[[], None]] = []
    clients: list[redis.Redis] = []

    def make(settings: NotifierSettings) -> DeliveryStack:
        client = redis.Redis.from_url(settings.redis_url)
        clients.append(client)
        stack = DeliveryStack(
            settings, OutboxWriter(client, settings.redis_prefix), SubscriptionStore(client, settings.redis_prefix)
        )

        async def run(stop: asyncio.Event) -> None:
            async_client = redis.asyncio.Redis.from_url(settings.redis_url)
            async with egress_client(settings.egress_policy, settings.notifier_request_timeout_s) as http:
                loop = DeliveryLoop(
                    Outbox(async_client, settings.redis_prefix),
                    {
                        "webhook": WebhookSender(http),
                        "email": EmailSender(settings.smtp_host, settings.smtp_port, settings.smtp_from, 5.0),
                    },
                    retry_policy(settings),
                    DeadLetterProducer(settings.bootstrap_servers, settings.topics.dead_letters),
                    rate_per_endpoint=settings.notifier_rate_per_endpoint,
                    endpoint_concurrency=settings.notifier_endpoint_concurrency,
                    poll_interval_s=0.05,
                )
                loop.stats = stack.stats  # shared before the loop starts, so tests can wait on it
                await loop.run(stop)
            await async_client.aclose()

        stop, _thread = run_in_thread(run)
        stoppers.append(stop)
        return stack

    yield make
    for stop in stoppers:
        stop()
    for client in clients:
        client.close()
