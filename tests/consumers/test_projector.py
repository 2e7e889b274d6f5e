"""The projector against the real broker and Redis: it builds the read model from parcel-state,
keeps newer versions, replays to identical content and dead-letters what it cannot take."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis

from consumers import metrics
from consumers.projector import Projector
from consumers.read_model import Keys
from consumers.settings import ConsumerSettings
from schemas.topics import TopicNames
from tests.consumers.helpers import StateProducer, parcel_state
from tests.stages import TopicReader, wait_for

pytestmark = pytest.mark.integration

RunProjector = Callable[[ConsumerSettings], Projector]


def dump(client: redis.Redis, prefix: str) -> dict[str, Any]:
    """Every key under ``prefix`` (with the prefix cut off) and its content."""
    content: dict[str, Any] = {}
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        kind = client.type(key)
        if kind == "hash":
            value: Any = client.hgetall(key)
        elif kind == "zset":
            value = client.zrange(key, 0, -1, withscores=True)
        else:
            value = (kind, client.dump(key))
        content[key.removeprefix(prefix)] = value
    return content


def test_projector_builds_the_read_model_and_indexes(
    consumer_settings: ConsumerSettings,
    state_producer: StateProducer,
    run_projector: RunProjector,
    redis_client: redis.Redis,
) -> None:
    keys = Keys(consumer_settings.redis_prefix)
    state_producer.send(
        parcel_state("LX000000001CN", 1, "InfoReceived"),
        parcel_state("LX000000001CN", 2, "InTransit"),
        parcel_state("lx000000002cn", 4, "CustomsHold", carrier="dhl", open_sla=["customs_clearance:breach"]),
        parcel_state("LX000000003CN", 5, "Delivered", route="CAN-LGG-NL"),
    )
    projector = run_projector(consumer_settings)
    wait_for(lambda: projector.stats.messages >= 4, 60, "the projector to read 4 states")
    # Messages are counted as read, before their batch is written: wait for the batch's last write.
    wait_for(
        lambda: (
            redis_client.hget(keys.parcel("LX000000003CN"), "status") == "Delivered"
            and metrics.PARCELS.labels("Delivered")._value.get() == 1
        ),
        30,
        "the batch and its status counts",
    )

    first = redis_client.hgetall(keys.parcel("LX000000001CN"))
    assert first["status"] == "InTransit"
    assert first["version"] == "2"
    assert redis_client.hget(keys.parcel("LX000000002CN"), "status") == "CustomsHold"
    assert redis_client.zrange(keys.status_index("InTransit"), 0, -1) == ["LX000000001CN"]
    assert redis_client.zrange(keys.status_index("InfoReceived"), 0, -1) == []
    assert redis_client.zrange(keys.carrier_index("dhl"), 0, -1) == ["LX000000002CN"]
    assert set(redis_client.zrange(keys.route_index("HGH-LGG-BE"), 0, -1)) == {"LX000000001CN", "LX000000002CN"}
    assert redis_client.zrange(keys.sla_index("customs_clearance:breach"), 0, -1) == ["LX000000002CN"]
    assert metrics.PARCELS.labels("Delivered")._value.get() == 1
    assert metrics.PARCELS.labels("InTransit")._value.get() == 1


def test_an_older_version_after_a_newer_one_changes_nothing(
    consumer_settings: ConsumerSettings,
    state_producer: StateProducer,
    run_projector: RunProjector,
    redis_client: redis.Redis,
) -> None:
    keys = Keys(consumer_settings.redis_prefix)
    projector = run_projector(consumer_settings)
    state_producer.send(parcel_state("LX000000001CN", 3, "OutForDelivery"))
    wait_for(lambda: redis_client.hget(keys.parcel("LX000000001CN"), "version") == "3", 60, "version 3 in Redis")
    before = dump(redis_client, consumer_settings.redis_prefix)

    with redis_client.pubsub() as pubsub:
        pubsub.subscribe(keys.channel("LX000000001CN"))
        state_producer.send(
            parcel_state("LX000000001CN", 2, "InTransit"), parcel_state("LX000000001CN", 3, "Exception")
        )
        wait_for(lambda: projector.stats.stale >= 2, 30, "the projector to skip both states")
        messages = [m for m in iter(lambda: pubsub.get_message(timeout=0.2), None) if m["type"] == "message"]

    assert dump(redis_client, consumer_settings.redis_prefix) == before
    assert messages == []


def test_replaying_the_topic_into_another_prefix_gives_identical_content(
    consumer_settings: ConsumerSettings,
    state_producer: StateProducer,
    run_projector: RunProjector,
    redis_client: redis.Redis,
) -> None:
    states = [
        parcel_state("LX000000001CN", 1, "InfoReceived"),
        parcel_state("LX000000001CN", 3, "OutForDelivery", carrier="dpd"),
        parcel_state("LX000000001CN", 2, "InTransit"),  # late, older
        parcel_state("LX000000002CN", 1, "InTransit", open_sla=["silence:at_risk"]),
        parcel_state("LX000000002CN", 2, "Exception", open_sla=["silence:breach"]),
        parcel_state("LX000000002CN", 2, "Exception", open_sla=["silence:breach"]),  # replayed
        parcel_state("LX000000003CN", 4, "Delivered", route="HGH-LGG-NL"),
    ]
    state_producer.send(*states)
    first = run_projector(consumer_settings)
    wait_for(lambda: first.stats.messages >= len(states), 60, "the first projector to read every state")
    # The movement board's per-parcel record is written last in a batch.
    wait_for(
        lambda: sum(key.startswith(":board:") for key in dump(redis_client, consumer_settings.redis_prefix)) == 3,
        30,
        "the first projector to finish its writes",
    )

    replay_settings = consumer_settings.model_copy(
        update={
            "redis_prefix": consumer_settings.redis_prefix + "-replay",
            "projector_group_id": consumer_settings.projector_group_id + "-replay",
        }
    )
    second = run_projector(replay_settings)
    wait_for(lambda: second.stats.messages >= len(states), 60, "the replay to read every state")

    original = dump(redis_client, consumer_settings.redis_prefix)
    # Messages are counted as read, before their batch is written: poll for the writes.
    replayed = wait_for(
        lambda: (content := dump(redis_client, replay_settings.redis_prefix)) == original and content,
        30,
        "the replay to write what the first projector wrote",
    )
    assert len(original) >= 10  # 3 parcels and their status, carrier, route and SLA indexes
    assert replayed == original
    assert original[":parcel:LX000000001CN"]["status"] == "OutForDelivery"


def test_invalid_and_undecodable_records_are_dead_lettered_and_the_projector_goes_on(
    readers: Callable[[str], TopicReader],
    topics: TopicNames,
    consumer_settings: ConsumerSettings,
    state_producer: StateProducer,
    run_projector: RunProjector,
    redis_client: redis.Redis,
) -> None:
    keys = Keys(consumer_settings.redis_prefix)
    state_producer.send(parcel_state("<script>alert(1)</script>", 1))
    state_producer.send_raw(b"LX000000009CN", b"not avro at all")
    state_producer.send(parcel_state("LX000000001CN", 1, "InTransit"))
    state_producer.send_raw(b"LX000000001CN", None)  # tombstone: the parcel leaves the read model
    state_producer.send(parcel_state("LX000000002CN", 1, "InTransit"))
    state_producer.flush()
    projector = run_projector(consumer_settings)

    reader = readers(topics.dead_letters)
    wait_for(lambda: reader.poll() >= 2, 30, "2 dead letters")
    dead_letters = reader.values()
    assert {d["reason_code"] for d in dead_letters} == {"invalid_tracking_number", "undecodable"}
    assert all(d["stage"] == "projector" and d["source_topic"] == topics.parcel_state for d in dead_letters)
    undecodable = next(d for d in dead_letters if d["reason_code"] == "undecodable")
    assert undecodable["payload"] == b"not avro at all"
    assert undecodable["key"] == b"LX000000009CN"

    wait_for(lambda: projector.stats.messages >= 5, 30, "the projector to read every message")
    assert redis_client.hget(keys.parcel("LX000000002CN"), "status") == "InTransit"
    assert not redis_client.exists(keys.parcel("LX000000001CN"))
    assert redis_client.zrange(keys.status_index("InTransit"), 0, -1) == ["LX000000002CN"]
    assert not [key for key in redis_client.scan_iter(match=f"{consumer_settings.redis_prefix}*") if "<" in key]


def test_isolation_a_record_whose_handling_raises_is_dead_lettered_and_the_projector_goes_on(
    readers: Callable[[str], TopicReader],
    topics: TopicNames,
    consumer_settings: ConsumerSettings,
    state_producer: StateProducer,
    run_projector: RunProjector,
    redis_client: redis.Redis,
) -> None:
    keys = Keys(consumer_settings.redis_prefix)
    # A hash no projector wrote (another tool, a bad restore): its version is not a number, so
    # planning this parcel's write raises ValueError. Before, the projector died on it, restarted
    # and met the same record again.
    redis_client.hset(keys.parcel("LX000000007CN"), mapping={"version": "seven", "status": "InTransit"})
    state_producer.send(parcel_state("LX000000007CN", 3, "InTransit"))
    state_producer.send(parcel_state("LX000000008CN", 1, "InTransit"))
    state_producer.flush()
    projector = run_projector(consumer_settings)

    reader = readers(topics.dead_letters)
    wait_for(lambda: reader.poll() >= 1, 30, "a dead letter")
    (dead_letter,) = reader.values()
    assert dead_letter["reason_code"] == "processing_error"
    assert dead_letter["reason"].startswith("ValueError: ")
    assert dead_letter["key"] == b"LX000000007CN"
    assert dead_letter["stage"] == "projector"
    wait_for(lambda: redis_client.hget(keys.parcel("LX000000008CN"), "status") == "InTransit", 30, "the next parcel")

    # The stage goes on: a later record is projected too.
    state_producer.send(parcel_state("LX000000009CN", 1, "Delivered"))
    state_producer.flush()
    wait_for(lambda: redis_client.hget(keys.parcel("LX000000009CN"), "status") == "Delivered", 30, "a later parcel")
    assert projector.stats.dead_lettered == 1
