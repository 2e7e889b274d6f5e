"""The whole notifier process: Kafka status-updates → outbox → webhooks, across a SIGTERM and restarts."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from consumers.movements import Keys as MovementKeys
from consumers.notifier.model import new_subscription
from consumers.notifier.service import NotifierSummary, run_notifier
from consumers.notifier.settings import NotifierSettings
from consumers.notifier.store import SubscriptionStore
from schemas.topics import KEY_PARTITIONER
from tests.stages import python_command, wait_for

from .conftest import publish_updates, status_update

pytestmark = pytest.mark.integration


def _run_in_background(settings: NotifierSettings) -> tuple[threading.Event, threading.Thread, list[NotifierSummary]]:
    stop, summaries = threading.Event(), []
    thread = threading.Thread(target=lambda: summaries.append(run_notifier(settings, stop, poll_interval_s=0.05)))
    thread.start()
    return stop, thread, summaries


def _stop(stop: threading.Event, thread: threading.Thread) -> None:
    stop.set()
    thread.join(timeout=60)
    assert not thread.is_alive(), "the notifier did not stop"


def _group_caught_up(settings: NotifierSettings, topic: str, records: int) -> bool:
    """True when the group's committed offsets cover all ``records`` of the topic (offsets start at 0)."""
    probe = Consumer(
        {"bootstrap.servers": settings.bootstrap_servers, "group.id": settings.notifier_group_id, "log_level": 0}
    )
    try:
        partitions = probe.list_topics(topic, timeout=10).topics[topic].partitions
        committed = probe.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        return sum(max(tp.offset, 0) for tp in committed) == records
    finally:
        probe.close()


def _env(settings: NotifierSettings) -> dict[str, str]:
    return {f"PARCELSTREAM_{name.upper()}": str(value) for name, value in settings.model_dump().items()}


def test_exactly_one_delivery_per_update_across_sigterm_restart_and_replay(
    settings_factory, webhook_receiver, redis_url, bootstrap_servers, topics, stages
) -> None:
    settings = settings_factory(notifier_session_timeout_ms=6000, notifier_rate_per_endpoint=5.0)
    import redis

    client = redis.Redis.from_url(redis_url)
    url = webhook_receiver.url("/hooks", "merchant-secret")
    SubscriptionStore(client, settings.redis_prefix).add(
        new_subscription(scope="merchant", target="shop-1", channel="webhook", address=url, secret="merchant-secret")
    )
    client.close()
    updates = [status_update(f"LP-{p}", s, "InTransit", merchant="shop-1") for s in (1, 2, 3) for p in range(10)]
    duplicates = updates[:5]  # the same update_id published twice
    other_merchant = [status_update("LP-X", 1, "InTransit", merchant="shop-2")]
    publish_updates(bootstrap_servers, topics.status_updates, updates + duplicates + other_merchant)
    garbage = Producer({"bootstrap.servers": bootstrap_servers, "partitioner": KEY_PARTITIONER, "log_level": 3})
    garbage.produce(topics.status_updates, key=b"LP-BAD", value=b"not avro")
    assert garbage.flush(10) == 0
    records = len(updates) + len(duplicates) + len(other_merchant) + 1

    # Run 1: the CLI in its own process, stopped by SIGTERM mid-way (the rate limit keeps it slow).
    process = stages.start("notifier", python_command("consumers.notifier.cli", "notifier"), _env(settings))
    wait_for(lambda: len(webhook_receiver.delivered("/hooks")) >= 3, 40, "first deliveries", [process])
    assert process.stop(timeout=30) == 0, process.log_tail()  # SIGTERM (SIGKILL after 30 s)
    assert "notifier stopped:" in process.log_text()
    delivered_by_first_run = len(webhook_receiver.delivered("/hooks"))
    assert delivered_by_first_run < len(updates), "the first run should have been stopped mid-way"

    # Run 2: same group, picks up what is left.
    stop, thread, _ = _run_in_background(settings)
    try:
        wait_for(lambda: len(webhook_receiver.delivered("/hooks")) >= len(updates), timeout=40, what="all deliveries")
        wait_for(
            lambda: _group_caught_up(settings, topics.status_updates, records),
            timeout=20,
            what="the group to commit everything",
        )
    finally:
        _stop(stop, thread)

    # Run 3: a new group replays the topic from the start.
    replay = settings.model_copy(update={"notifier_group_id": settings.notifier_group_id + "-replay"})
    stop, thread, summaries = _run_in_background(replay)
    try:
        wait_for(
            lambda: _group_caught_up(replay, topics.status_updates, records), timeout=40, what="the replay to finish"
        )
    finally:
        _stop(stop, thread)

    counts = Counter(d.body["update_id"] for d in webhook_receiver.delivered("/hooks"))
    assert counts == Counter({u["update_id"]: 1 for u in updates})
    assert all(d.verified for d in webhook_receiver.delivered("/hooks"))
    (replay_summary,) = summaries
    assert replay_summary.consumer.enqueued == 0
    assert replay_summary.consumer.duplicates == len(updates) + len(duplicates)
    assert replay_summary.consumer.dead_lettered == 1  # the garbage record, again: never silently dropped
    assert replay_summary.pending == 0


def test_undecodable_record_goes_to_dead_letters_and_the_rest_goes_on(
    settings_factory, webhook_receiver, redis_url, bootstrap_servers, topics, readers
) -> None:
    settings = settings_factory(notifier_session_timeout_ms=6000)
    import redis

    client = redis.Redis.from_url(redis_url)
    url = webhook_receiver.url("/parcel", "s3cret")
    SubscriptionStore(client, settings.redis_prefix).add(
        new_subscription(scope="tracking_number", target="LP-OK", channel="webhook", address=url, secret="s3cret")
    )
    client.close()
    producer = Producer({"bootstrap.servers": bootstrap_servers, "partitioner": KEY_PARTITIONER, "log_level": 3})
    producer.produce(topics.status_updates, key=b"LP-OK", value=b"\x00\x00\x00\x00\x63garbage")
    assert producer.flush(10) == 0
    publish_updates(bootstrap_servers, topics.status_updates, [status_update("LP-OK", 1, "Delivered")])

    stop, thread, _ = _run_in_background(settings)
    try:
        wait_for(lambda: len(webhook_receiver.delivered("/parcel")) == 1, timeout=40, what="the good update")
    finally:
        _stop(stop, thread)

    reader = readers(topics.dead_letters)
    wait_for(lambda: reader.poll() >= 1, 20, "the dead letter")
    (dead_letter,) = reader.values()
    assert dead_letter["stage"] == "notifier"
    assert dead_letter["reason_code"] == "unknown_schema_id"
    assert dead_letter["source_topic"] == topics.status_updates and dead_letter["key"] == b"LP-OK"


def test_isolation_an_update_whose_handling_raises_is_dead_lettered_and_the_rest_goes_on(
    settings_factory, webhook_receiver, redis_url, bootstrap_servers, topics, readers
) -> None:
    """A StatusUpdate dated 9999-12-31 23:59:59 UTC at +01:00 passes the edge; building its webhook
    payload raises (year 10000). Before, the notifier died on it and met it again at every restart."""
    settings = settings_factory(notifier_session_timeout_ms=6000)
    import redis

    client = redis.Redis.from_url(redis_url)
    url = webhook_receiver.url("/iso", "s3cret")
    for tracking_number in ("LP-POISON", "LP-AFTER"):
        SubscriptionStore(client, settings.redis_prefix).add(
            new_subscription(
                scope="tracking_number", target=tracking_number, channel="webhook", address=url, secret="s3cret"
            )
        )
    client.close()
    poison = status_update("LP-POISON", 1, "Delivered")
    poison["event_time_ms"] = 253_402_300_799_000  # 9999-12-31T23:59:59Z
    publish_updates(bootstrap_servers, topics.status_updates, [poison, status_update("LP-AFTER", 1, "Delivered")])

    stop, thread, summaries = _run_in_background(settings)
    try:
        wait_for(lambda: len(webhook_receiver.delivered("/iso")) == 1, timeout=40, what="the update after the poison")
    finally:
        _stop(stop, thread)

    reader = readers(topics.dead_letters)
    wait_for(lambda: reader.poll() >= 1, 20, "the dead letter")
    (dead_letter,) = reader.values()
    assert (dead_letter["stage"], dead_letter["reason_code"]) == ("notifier", "processing_error")
    assert "OverflowError" in dead_letter["reason"] or "ValueError" in dead_letter["reason"]
    assert dead_letter["key"] == b"LP-POISON"
    assert summaries[0].consumer.dead_lettered == 1


def test_a_linehaul_update_names_the_flight_the_movement_board_knows(
    settings_factory, webhook_receiver, redis_url, bootstrap_servers, topics
) -> None:
    """Webhooks and e-mails name the flight as the tracking page does: the notifier reads the parcel's
    movement from the projector's board (``consumers/movements.py``), never the air waybill."""
    settings = settings_factory(notifier_session_timeout_ms=6000)
    import redis

    client = redis.Redis.from_url(redis_url)
    url = webhook_receiver.url("/flight", "s3cret")
    store = SubscriptionStore(client, settings.redis_prefix)
    for tracking_number in ("LP-FLOWN", "LP-LOOSE"):
        store.add(
            new_subscription(
                scope="tracking_number", target=tracking_number, channel="webhook", address=url, secret="s3cret"
            )
        )
    client.hset(MovementKeys(settings.redis_prefix).board("LP-FLOWN"), "mv", "flight:CK261/112-12345675")
    client.close()
    updates = []
    for tracking_number in ("LP-FLOWN", "LP-LOOSE"):
        update = status_update(tracking_number, 1, "InTransit")
        update["sub_status"] = "departed_origin"
        updates.append(update)
    publish_updates(bootstrap_servers, topics.status_updates, updates)

    stop, thread, _ = _run_in_background(settings)
    try:
        wait_for(lambda: len(webhook_receiver.delivered("/flight")) == 2, timeout=40, what="both webhooks")
    finally:
        _stop(stop, thread)

    bodies = {d.body["tracking_number"]: d.body for d in webhook_receiver.delivered("/flight")}
    assert bodies["LP-FLOWN"]["movement"] == {"kind": "flight", "reference": "CK261"}
    assert "on flight CK261" in bodies["LP-FLOWN"]["message"]
    assert "112-12345675" not in str(bodies["LP-FLOWN"])
    assert bodies["LP-LOOSE"]["movement"] is None
    assert "flight" not in bodies["LP-LOOSE"]["message"]
