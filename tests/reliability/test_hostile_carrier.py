"""A hostile carrier inside realistic traffic (`parcelstream simulate --hostile`): the same simulated
day runs twice, once clean and once with the hostile records mixed in, each on its own topics and
worker. The hostile run must dead-letter every hostile record with its reason, fire no breach from an
out-of-range time, keep every stage alive, and end every honest parcel exactly as the clean run."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
import redis
from confluent_kafka import Producer

from consumers.read_model import Keys
from producers.simulator import SimulationConfig, simulate
from producers.simulator.hostile import HostileRecord, with_hostile
from producers.simulator.model import DAY, Simulation, TimedRecord
from schemas.codec import default_codec
from schemas.topics import KEY_PARTITIONER, TopicNames
from tests.stages import PARTITIONS, StageLauncher, TopicReader, wait_for
from tests.streams.worker.test_worker import state_mismatches

pytestmark = pytest.mark.e2e

CODEC = default_codec()
#: Fields of an honest parcel's latest ParcelState that the hostile records must not change.
COMPARED = ("status", "sub_status", "merchant", "destination_postcode", "service_level", "carrier", "last_event_id")


def produce_raw(bootstrap_servers: str, topics: TopicNames, records: list[TimedRecord]) -> None:
    """Publish as a carrier's own producer would: encoded, keyed and partitioned like ours, with none of
    the publisher's checks (the worker must defend itself against other producers)."""
    producer = Producer({"bootstrap.servers": bootstrap_servers, "partitioner": KEY_PARTITIONER, "acks": "all"})
    for record in records:
        value = record.value
        if record.kind == "scan":
            key, topic, name = value["tracking_number"] or value["handling_unit"], topics.scans, "ScanEvent"
        else:
            key, topic, name = value["handling_unit"], topics.manifests, "Manifest"
        producer.produce(topic, key=key.encode(), value=CODEC.encode(name, value))
    assert producer.flush(30) == 0


def record_id(value: dict[str, Any]) -> str:
    return value.get("event_id") or value["manifest_id"]


def dead_lettered_ids(dead_letters: TopicReader) -> dict[str, str]:
    """Id of each dead-lettered scan or manifest → its reason code."""
    found = {}
    for _key, letter in dead_letters.records:
        try:
            value = CODEC.decode(letter["payload"]).value
        except Exception:
            continue
        found[record_id(value)] = letter["reason_code"]
    return found


def honest_simulation() -> Simulation:
    """A finished simulated journey set, all of it in the recent past: the pipeline refuses event times
    later than PARCELSTREAM_MAX_FUTURE or older than PARCELSTREAM_MAX_AGE from now."""
    config = SimulationConfig(seed=23, parcels=40, start_ms=0)
    span_ms = max(r.value["event_time_ms"] for r in simulate(config).records)
    start_ms = (time.time_ns() // 1_000_000 - span_ms) // DAY * DAY - 2 * DAY
    return simulate(replace(config, start_ms=start_ms))


def test_hostile_carrier_is_dead_lettered_and_honest_parcels_end_as_without_it(
    bootstrap_servers: str,
    topics_factory: Callable[..., TopicNames],
    stages: StageLauncher,
    readers: Callable[[str], TopicReader],
    redis_url: str,
    redis_prefix: str,
) -> None:
    clean = honest_simulation()
    mixed, hostile = with_hostile(clean, rate=0.02)
    refused: list[HostileRecord] = [h for h in hostile if h.refused]
    assert {h.kind for h in refused} >= {"unit_self", "far_future", "forged_order", "wrong_carrier"}

    clean_topics, hostile_topics = topics_factory(partitions=PARTITIONS), topics_factory(partitions=PARTITIONS)
    clean_worker = stages.worker(clean_topics, name="clean-worker", log_level="warning")
    hostile_worker = stages.worker(hostile_topics, name="hostile-worker", log_level="warning")
    projector = stages.projector(hostile_topics, redis_url, redis_prefix)
    produce_raw(bootstrap_servers, clean_topics, clean.records)
    produce_raw(bootstrap_servers, hostile_topics, mixed.records)

    clean_states, hostile_states = readers(clean_topics.parcel_state), readers(hostile_topics.parcel_state)
    dead_letters = readers(hostile_topics.dead_letters)

    def settled() -> bool:
        clean_states.poll()
        hostile_states.poll()
        dead_letters.poll()
        lettered = dead_lettered_ids(dead_letters)
        return (
            not state_mismatches(clean, clean_states.latest_by_key())
            and not state_mismatches(clean, hostile_states.latest_by_key())
            and all(record_id(h.record.value) in lettered for h in refused)
        )

    def describe() -> str:
        lettered = dead_lettered_ids(dead_letters)
        missing = [f"{h.kind}" for h in refused if record_id(h.record.value) not in lettered]
        wrong = state_mismatches(clean, hostile_states.latest_by_key())
        return f"hostile records not dead-lettered: {missing}; honest parcels off: {wrong[:5]}"

    wait_for(settled, 150, "both runs to settle", [clean_worker, hostile_worker, projector], describe)

    lettered = dead_lettered_ids(dead_letters)
    wrong_reasons = [
        (h.kind, lettered[record_id(h.record.value)])
        for h in refused
        if lettered[record_id(h.record.value)] not in h.reasons
    ]
    assert wrong_reasons == []
    honest_ids = {record_id(r.value) for r in clean.records}
    assert not honest_ids & set(lettered), "an honest record was dead-lettered"

    clean_latest, hostile_latest = clean_states.latest_by_key(), hostile_states.latest_by_key()
    for tracking_number in clean.truth:
        expected = {field: clean_latest[tracking_number][field] for field in COMPARED}
        got = {field: hostile_latest[tracking_number][field] for field in COMPARED}
        assert got == expected, tracking_number
        assert [e["event_id"] for e in hostile_latest[tracking_number]["history"]] == [
            e["event_id"] for e in clean_latest[tracking_number]["history"]
        ]

    sla_events = readers(hostile_topics.sla_events)
    sla_events.poll()
    latest_honest_ms = max(r.value["event_time_ms"] for r in clean.records)
    # The SLA clock never jumped to a hostile time: no event was observed past the honest traffic
    # (plus the test's own wall time at clock speed 1).
    assert all(event["observed_ms"] <= latest_honest_ms + DAY for event in sla_events.values())

    # The read model shows the true shipment facts of the parcels a forged order targeted.
    client = redis.Redis.from_url(redis_url)
    keys = Keys(redis_prefix)
    forged = {h.record.value["tracking_number"] for h in hostile if h.kind in ("forged_order", "ancient_order")}
    assert forged

    def read_model_true() -> bool:
        merchants = {tn: client.hget(keys.parcel(tn), "merchant") for tn in forged}
        return all(m is not None and m.decode() == clean_latest[tn]["merchant"] for tn, m in merchants.items())

    wait_for(read_model_true, 60, "the forged parcels' true merchants in Redis", [projector])

    def lag_drained() -> bool:
        return hostile_worker.metric_total("parcelstream_consumer_lag") == 0

    def lag_lines() -> str:
        text = hostile_worker.metrics_text()
        return "; ".join(line for line in text.splitlines() if line.startswith("parcelstream_consumer_lag{"))

    wait_for(lag_drained, 60, "the hostile run's worker lag to drain", [hostile_worker], lag_lines)
    assert clean_worker.alive and hostile_worker.alive and projector.alive
    assert hostile_worker.stop() == 0
    assert clean_worker.stop() == 0
