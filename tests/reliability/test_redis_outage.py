"""Fault injection: the projector's and notifier's Redis goes away mid-stream (the test's own
redis-server, stopped with SIGTERM) and comes back on the same port with its append-only file. Both
processes must keep running, back off, then catch up: every parcel at its last version in the read
model and one delivery per status update (per idempotency key) at the real webhook receiver."""

from __future__ import annotations

from collections import Counter

import pytest
import redis

from consumers.notifier.model import new_subscription
from consumers.notifier.store import SubscriptionStore
from consumers.read_model import Keys
from schemas.topics import TopicNames
from tests.conftest import unique
from tests.consumers.helpers import StateProducer, parcel_state
from tests.consumers.notifier.conftest import WebhookReceiver, publish_updates, status_update
from tests.stages import RedisServer, StageLauncher, wait_for

pytestmark = pytest.mark.e2e

PARCELS = 30
BEFORE = ("InfoReceived", "InTransit", "OutForDelivery")  # versions 1-3, published before the outage
DURING = ("AttemptFail", "Delivered")  # versions 4-5, published while Redis is down
SECRET = "outage-secret"


def parcels() -> list[str]:
    return [f"LX{n:09d}BE" for n in range(PARCELS)]


def publish_phase(
    bootstrap_servers: str, topics: TopicNames, statuses: tuple[str, ...], first_version: int
) -> list[str]:
    """Parcel states and status updates of ``statuses`` for every parcel; returns the update ids."""
    producer = StateProducer(bootstrap_servers, topics)
    updates = []
    for offset, status in enumerate(statuses):
        version = first_version + offset
        producer.send(*(parcel_state(tn, version, status, merchant="shop-1") for tn in parcels()))
        updates += [status_update(tn, version, status, merchant="shop-1") for tn in parcels()]
    publish_updates(bootstrap_servers, topics.status_updates, updates)
    return [update["update_id"] for update in updates]


def versions_in_read_model(client: redis.Redis, keys: Keys) -> Counter[int]:
    try:
        return Counter(int(client.hget(keys.parcel(tn), "version") or 0) for tn in parcels())
    except redis.RedisError:
        return Counter()


def test_projector_and_notifier_ride_out_a_redis_restart(
    bootstrap_servers: str,
    topics: TopicNames,
    stages: StageLauncher,
    private_redis: RedisServer,
    webhook_receiver: WebhookReceiver,
) -> None:
    prefix = unique("outage")
    keys = Keys(prefix)
    client = redis.Redis.from_url(private_redis.url, socket_connect_timeout=1, socket_timeout=2)
    url = webhook_receiver.url("/hooks", SECRET)
    SubscriptionStore(client, prefix).add(
        new_subscription(scope="merchant", target="shop-1", channel="webhook", address=url, secret=SECRET)
    )
    projector = stages.projector(topics, private_redis.url, prefix)
    # A slow endpoint rate, so deliveries are still under way when Redis goes away.
    notifier = stages.notifier(topics, private_redis.url, prefix, notifier_rate_per_endpoint="10")
    processes = [projector, notifier]

    expected = publish_phase(bootstrap_servers, topics, BEFORE, 1)
    wait_for(lambda: len(webhook_receiver.delivered("/hooks")) >= 25, 60, "the first deliveries", processes)
    projected_at_stop = versions_in_read_model(client, keys)[len(BEFORE)]
    private_redis.stop()
    delivered_at_stop = len(webhook_receiver.delivered("/hooks"))

    expected += publish_phase(bootstrap_servers, topics, DURING, len(BEFORE) + 1)
    wait_for(
        lambda: "failed" in projector.log_text() and "Redis" in projector.log_text(),
        60,
        "the projector to meet the outage",
        processes,
    )
    wait_for(lambda: "Error" in notifier.log_text(), 60, "the notifier to meet the outage", processes)
    assert projector.alive and notifier.alive

    private_redis.start()
    final_version = len(BEFORE) + len(DURING)
    wait_for(
        lambda: versions_in_read_model(client, keys)[final_version] == PARCELS,
        90,
        "every parcel at its last version",
        processes,
    )
    wait_for(
        lambda: len({d.idempotency_key for d in webhook_receiver.delivered("/hooks")}) >= len(expected),
        120,
        f"{len(expected)} deliveries",
        processes,
    )
    statuses = {client.hget(keys.parcel(tn), "status") for tn in parcels()}
    client.close()
    deliveries = webhook_receiver.delivered("/hooks")
    per_update = Counter(delivery.body["update_id"] for delivery in deliveries)
    per_key = Counter(delivery.idempotency_key for delivery in deliveries)
    redelivered = sum(count - 1 for count in per_key.values())
    assert set(per_update) == set(expected)
    assert statuses == {b"Delivered"}
    assert all(delivery.verified for delivery in deliveries)
    assert projector.alive and notifier.alive
    print(
        f"\nredis outage: stopped after {delivered_at_stop} deliveries and {projected_at_stop} parcels projected "
        f"at version {len(BEFORE)}; "
        f"{len(DURING) * PARCELS} states and updates published while down; after the restart: "
        f"{PARCELS} parcels at version {final_version}, {len(expected)} updates, {len(deliveries)} deliveries, "
        f"{len(per_key)} distinct idempotency keys, redelivered {redelivered}, lost "
        f"{len(set(expected) - set(per_update))}"
    )
    assert redelivered == 0
