"""A parcel's life end to end (real broker, worker, projector, notifier, Redis): archived after its
retention, erased on request. Afterwards no Redis key (the notifier's subscriptions, queued jobs and
idempotency keys included), no worker table entry and no latest parcel-state value names the
tracking number, and a late scan starts no new history."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis
from confluent_kafka import Consumer, Producer, TopicPartition

from consumers.notifier.model import new_subscription
from consumers.notifier.store import OutboxWriter, SubscriptionStore
from deploy.embedded import free_port
from deploy.parcels import erase_command
from producers.publisher import Publisher
from schemas.codec import default_codec
from schemas.kafka_clients import producer_config
from schemas.topics import TopicNames
from tests.stages import StageLauncher, TopicReader, wait_for
from tests.streams.builders import HOUR, T0, scan, shipment

pytestmark = pytest.mark.e2e
CODEC = default_codec()


def latest_values(bootstrap_servers: str, topic: str) -> dict[bytes, bytes | None]:
    """Latest value of every key of a topic (None: a tombstone), read from the beginning."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap_servers, "group.id": "lifecycle-probe", "enable.partition.eof": True}
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        latest: dict[bytes, bytes | None] = {}
        ended: set[int] = set()
        while len(ended) < len(partitions):
            for message in consumer.consume(500, timeout=1.0):
                if message.error() is not None:
                    ended.add(message.partition())
                elif message.key() is not None:
                    latest[message.key()] = message.value()
        return latest
    finally:
        consumer.close()


def redis_keys_naming(client: redis.Redis, prefix: str, tracking_number: str) -> list[str]:
    named = [key for key in client.scan_iter(match=f"{prefix}*", count=1000) if tracking_number in key]
    # The notifier's strings: subscriptions and queued jobs hold the number (and a recipient) in their value.
    for key in client.scan_iter(match=f"{prefix}:notifier:*", count=1000):
        if client.type(key) == "string" and tracking_number in (client.get(key) or ""):
            named.append(key)
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        kind = client.type(key)
        in_set = kind == "set" and client.sismember(key, tracking_number)
        if in_set or (kind == "zset" and client.zscore(key, tracking_number) is not None):
            named.append(key)
    return named


def test_a_delivered_parcel_is_archived_and_an_erased_one_leaves_no_trace(
    bootstrap_servers: str,
    topics_factory: Callable[..., TopicNames],
    stages: StageLauncher,
    readers: Callable[[str], TopicReader],
    redis_url: str,
    redis_prefix: str,
) -> None:
    topics = topics_factory(partitions=4)
    # 100,000 event seconds per wall second, one day's retention: a parcel closes and is archived
    # within seconds of wall time.
    worker = stages.worker(topics, clock_speed=100_000, retention_days="1", expire_days="30")
    projector = stages.projector(topics, redis_url, redis_prefix)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    delivered, erased = "LPARCHIVE01CN", "LPERASE001CN"
    # The customer's e-mail subscription; nothing listens on its SMTP port: the jobs stay queued.
    notifier = stages.notifier(topics, redis_url, redis_prefix, smtp_port=str(free_port()))
    notifier_client = redis.Redis.from_url(redis_url)
    outbox = OutboxWriter(notifier_client, redis_prefix)
    SubscriptionStore(notifier_client, redis_prefix).add(
        new_subscription(scope="tracking_number", target=erased, channel="email", address="customer@example.com")
    )
    publisher = Publisher(bootstrap_servers, topics)
    for number in (delivered, erased):
        order = scan("ORDER_CREATED", T0, f"{number}-o", tracking_number=number, with_shipment=shipment())
        publisher.publish_scan(order)
        publisher.publish_scan(scan("HUB_SORTED", T0 + HOUR, f"{number}-h", tracking_number=number))
    publisher.publish_scan(scan("DELIVERED", T0 + 2 * HOUR, f"{delivered}-d", tracking_number=delivered))
    assert publisher.flush().ok
    wait_for(lambda: client.exists(f"{redis_prefix}:parcel:{erased}") == 1, 60, "the parcel in Redis", [worker])
    wait_for(lambda: outbox.holdings(erased)["idempotency_keys"] >= 1, 60, "the customer's notifications", [notifier])

    producer = Producer(producer_config(bootstrap_servers))
    command = CODEC.encode("ParcelCommand", erase_command(erased, "ticket GDPR-7", T0))
    producer.produce(topics.parcel_commands, key=erased.encode(), value=command)
    assert producer.flush(30) == 0

    def gone(number: str) -> bool:
        return not redis_keys_naming(client, redis_prefix, number)

    wait_for(lambda: gone(erased), 60, "the erased parcel gone from Redis", [worker, projector, notifier])
    assert outbox.holdings(erased) == {"queued_jobs": 0, "idempotency_keys": 0}
    strings = [key for key in client.scan_iter(match=f"{redis_prefix}:*") if client.type(key) == "string"]
    assert not any("customer@example.com" in (client.get(key) or "") for key in strings)  # the recipient too
    wait_for(lambda: gone(delivered), 90, "the archived parcel gone from Redis", [worker, projector])

    # A late scan for either starts no new history: dead-lettered with the reason.
    publisher.publish_scan(scan("HUB_SORTED", T0 + 3 * HOUR, f"{erased}-late", tracking_number=erased))
    publisher.publish_scan(scan("HUB_SORTED", T0 + 3 * HOUR, f"{delivered}-late", tracking_number=delivered))
    assert publisher.flush().ok
    dead_letters = readers(topics.dead_letters)

    def refused() -> set[str]:
        dead_letters.poll()
        return {letter["reason_code"] for _key, letter in dead_letters.records}

    wait_for(lambda: {"parcel_erased", "parcel_archived"} <= refused(), 60, "the late scans refused", [worker])

    states = latest_values(bootstrap_servers, topics.parcel_state)
    assert states[erased.encode()] is None and states[delivered.encode()] is None
    table = latest_values(bootstrap_servers, f"{topics.prefix}-worker-parcels-changelog")
    # Faust writes the changelog's keys as JSON strings.
    assert f'"{erased}"'.encode() in table and table[f'"{erased}"'.encode()] is None  # a tombstone
    assert not any(erased.encode() in key or erased.encode() in value for key, value in table.items() if value)
    assert 0 < len(table[f'"{delivered}"'.encode()] or b"") < 100  # the archive marker
    assert gone(erased) and gone(delivered)
    notifier_client.close()
