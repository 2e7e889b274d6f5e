"""A customer's erasure in the notifier (real broker, real Redis): a ParcelCommand on parcel-commands
deletes the parcel's tracking-number subscriptions, queued notifications and idempotency keys; merchant
subscriptions and other parcels stay; a replay is harmless; a bad command is dead-lettered."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio
from confluent_kafka import Producer
from typer.testing import CliRunner

from consumers.notifier.model import new_subscription
from consumers.notifier.service import NotifierSummary, run_notifier
from consumers.notifier.settings import NotifierSettings
from consumers.notifier.store import IDEMPOTENCY_TTL_S, Outbox, OutboxWriter, SubscriptionStore
from deploy.embedded import free_port
from deploy.parcels import app as parcels_app
from deploy.parcels import erase_command
from schemas.codec import default_codec
from schemas.erasure import AUDIT_LOGGER, erased_key
from schemas.topics import KEY_PARTITIONER
from tests.stages import wait_for

from .conftest import publish_updates, status_update

pytestmark = pytest.mark.integration
ERASED, KEPT = "LP-ERASE-1", "LP-KEEP-1"
RECIPIENT = "erase-me@example.com"


def stored_values(client: redis.Redis, prefix: str) -> Iterator[tuple[str, str]]:
    """(key, each value or member) of every key under the prefix, as text."""
    for raw_key in client.scan_iter(match=f"{prefix}*", count=1000):
        key = raw_key.decode()
        kind = client.type(raw_key).decode()
        if kind == "string":
            values = [client.get(raw_key)]
        elif kind == "set":
            values = list(client.smembers(raw_key))
        elif kind == "zset":
            values = client.zrange(raw_key, 0, -1)
        elif kind == "hash":
            values = [part for pair in client.hgetall(raw_key).items() for part in pair]
        else:
            values = []
        yield key, key
        for value in values:
            yield key, (value or b"").decode(errors="replace")


def keys_naming(client: redis.Redis, prefix: str, *needles: str) -> set[str]:
    return {key for key, text in stored_values(client, prefix) if any(needle in text for needle in needles)}


def show(settings: NotifierSettings) -> dict[str, int]:
    result = CliRunner().invoke(
        parcels_app,
        [
            "show",
            ERASED,
            "--bootstrap-servers",
            settings.bootstrap_servers,
            "--topic-prefix",
            settings.topic_prefix,
            "--redis-url",
            settings.redis_url,
            "--redis-prefix",
            settings.redis_prefix,
        ],
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.output)["notifier"]


def test_an_erase_command_removes_the_parcels_notifier_data_and_nothing_else(
    settings_factory, webhook_receiver, redis_url, bootstrap_servers, topics, readers, caplog
) -> None:
    # Deliveries fail and wait 60 s to retry: the jobs stay queued while the parcel is erased.
    settings = settings_factory(
        notifier_session_timeout_ms=6000, notifier_retry_base_delay_s=60.0, smtp_port=free_port()
    )
    client = redis.Redis.from_url(redis_url)
    subscriptions = SubscriptionStore(client, settings.redis_prefix)
    outbox = OutboxWriter(client, settings.redis_prefix)
    down = webhook_receiver.url("/down", "s3cret", [503] * 100)
    for scope, target, channel, address in [
        ("tracking_number", ERASED, "email", RECIPIENT),
        ("tracking_number", ERASED, "webhook", down),
        ("tracking_number", KEPT, "webhook", down),
        ("merchant", "shop-1", "webhook", down),
    ]:
        subscriptions.add(
            new_subscription(scope=scope, target=target, channel=channel, address=address, secret="s3cret")
        )
    updates = [status_update(number, s, "InTransit", merchant="shop-1") for number in (ERASED, KEPT) for s in (1, 2)]
    publish_updates(bootstrap_servers, topics.status_updates, updates)

    stop, summaries = threading.Event(), []
    thread = threading.Thread(target=lambda: summaries.append(run_notifier(settings, stop, poll_interval_s=0.05)))
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    thread.start()
    try:
        # 3 subscriptions × 2 updates for the erased parcel, 2 × 2 for the kept one.
        wait_for(lambda: outbox.holdings(ERASED)["idempotency_keys"] == 6, 40, "the erased parcel's jobs")
        wait_for(lambda: outbox.holdings(KEPT)["idempotency_keys"] == 4, 40, "the kept parcel's jobs")
        assert show(settings) == {"subscriptions": 2, "queued_jobs": 6, "idempotency_keys": 6}
        job_ids = [raw.decode() for raw in client.hkeys(outbox.keys.parcel(ERASED))]

        codec = default_codec()
        command = codec.encode("ParcelCommand", erase_command(ERASED, "ticket GDPR-9", 1_790_000_000_000))
        producer = Producer({"bootstrap.servers": bootstrap_servers, "partitioner": KEY_PARTITIONER, "log_level": 3})
        producer.produce(topics.parcel_commands, key=b"LP-BAD", value=b"not avro")
        wrong_key = codec.encode("ParcelCommand", erase_command(KEPT, "ticket GDPR-10", 1_790_000_000_000))
        producer.produce(topics.parcel_commands, key=ERASED.encode(), value=wrong_key)  # keyed by another parcel
        producer.produce(topics.parcel_commands, key=ERASED.encode(), value=command)
        producer.produce(topics.parcel_commands, key=ERASED.encode(), value=command)  # replayed
        assert producer.flush(10) == 0
        # The stage goes on: a later update of another parcel is still queued.
        publish_updates(bootstrap_servers, topics.status_updates, [status_update(KEPT, 3, "InTransit")])

        wait_for(lambda: not keys_naming(client, settings.redis_prefix, ERASED, RECIPIENT), 40, "the erasure")
        wait_for(lambda: outbox.holdings(KEPT)["idempotency_keys"] == 5, 40, "the kept parcel's next job")
        dead_letters = readers(topics.dead_letters)
        wait_for(lambda: dead_letters.poll() >= 2, 20, "the bad commands dead-lettered")
    finally:
        stop.set()
        thread.join(timeout=60)
        assert not thread.is_alive(), "the notifier did not stop"

    assert not any(client.exists(outbox.keys.idempotency(i)) or client.exists(outbox.keys.job(i)) for i in job_ids)
    assert show(settings) == {"subscriptions": 0, "queued_jobs": 0, "idempotency_keys": 0}
    assert [s.target for s in subscriptions.of("merchant", "shop-1")] == ["shop-1"]
    assert subscriptions.count_of("tracking_number", KEPT) == 1
    assert outbox.holdings(KEPT) == {"queued_jobs": 5, "idempotency_keys": 5}
    letters = {(letter["reason_code"], letter["source_topic"]) for letter in dead_letters.values()}
    assert letters == {("bad_magic_byte", topics.parcel_commands), ("wrong_key", topics.parcel_commands)}
    (summary,) = summaries
    assert isinstance(summary, NotifierSummary) and summary.consumer.erasures == 2
    # The audit line names the parcel by the worker's hash only, with what was erased.
    audit = [record.getMessage() for record in caplog.records if record.name == AUDIT_LOGGER]
    assert len(audit) == 2 and all(erased_key(ERASED) in line and ERASED not in line for line in audit)
    assert "2 subscription(s), 6 queued notification(s), 6 idempotency key(s)" in audit[0]
    assert "0 subscription(s), 0 queued notification(s), 0 idempotency key(s)" in audit[1]
    client.close()


def test_a_job_in_delivery_while_its_parcel_is_erased_is_not_stored_again(redis_url, redis_prefix) -> None:
    client = redis.Redis.from_url(redis_url)
    subscription = new_subscription(scope="tracking_number", target=ERASED, channel="email", address=RECIPIENT)
    SubscriptionStore(client, redis_prefix).add(subscription)
    writer = OutboxWriter(client, redis_prefix)
    from consumers.notifier.model import jobs_for_update

    (job,) = jobs_for_update(status_update(ERASED, 1, "Delivered"), [subscription], 1_000)
    assert writer.enqueue(job)
    index = writer.keys.parcel(ERASED)
    assert 0 < client.ttl(index) <= IDEMPOTENCY_TTL_S  # the index expires with the keys it names

    async def deliver_across_an_erasure() -> None:
        async_client = redis.asyncio.Redis.from_url(redis_url)
        outbox = Outbox(async_client, redis_prefix)
        (claimed,) = await outbox.claim(job.endpoint_id, now_ms=2_000, lease_ms=60_000, limit=10)
        assert writer.erase_parcel(ERASED) == (1, 1)
        assert SubscriptionStore(client, redis_prefix).erase_tracking_number(ERASED) == 1
        await outbox.reschedule(claimed.retried("timeout", 3_000))  # a retry: the job must not come back
        await outbox.complete(claimed, "delivered", 4_000)  # nor its idempotency key
        await async_client.aclose()

    asyncio.run(deliver_across_an_erasure())
    assert not keys_naming(client, redis_prefix, ERASED, RECIPIENT)
    assert not client.exists(writer.keys.idempotency(job.job_id))
    assert writer.erase_parcel(ERASED) == (0, 0)  # a replay finds nothing
    client.close()


def test_a_completed_job_keeps_its_parcel_index_as_long_as_its_idempotency_key(redis_url, redis_prefix) -> None:
    client = redis.Redis.from_url(redis_url)
    subscription = new_subscription(scope="tracking_number", target=KEPT, channel="email", address=RECIPIENT)
    writer = OutboxWriter(client, redis_prefix)
    from consumers.notifier.model import jobs_for_update

    (job,) = jobs_for_update(status_update(KEPT, 1, "Delivered"), [subscription], 1_000)
    writer.enqueue(job)
    client.expire(writer.keys.parcel(KEPT), 5)  # as if enqueued long ago

    async def complete() -> None:
        async_client = redis.asyncio.Redis.from_url(redis_url)
        await Outbox(async_client, redis_prefix).complete(job, "delivered", 2_000)
        await async_client.aclose()

    asyncio.run(complete())
    assert client.ttl(writer.keys.parcel(KEPT)) >= client.ttl(writer.keys.idempotency(job.job_id)) > 5
    assert writer.holdings(KEPT) == {"queued_jobs": 0, "idempotency_keys": 1}
    client.close()
