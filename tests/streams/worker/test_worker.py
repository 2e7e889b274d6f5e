"""The stream-processor worker as a real process on the embedded broker: simulated traffic in,
parcel states, status updates, SLA events and dead letters out."""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from producers.publisher import Publisher
from producers.simulator import SimulationConfig, simulate
from producers.simulator.model import AnomalyRates, Simulation
from schemas.topics import TopicNames
from streams.core.taxonomy import classify
from tests.stages import PARTITIONS, StageLauncher, StageProcess, TopicReader, publish_records, wait_for
from tests.streams.builders import HOUR, T0, scan, shipment

pytestmark = pytest.mark.integration

SIM_START_MS = 1_767_225_600_000  # fixed: reproducible journeys
# The workers log at warning unless asked (e.g. STREAMS_TEST_LOG_LEVEL=debug to see a failure's story).
WORKER_LOG_LEVEL = os.environ.get("STREAMS_TEST_LOG_LEVEL", "warning")


# --- simulated traffic and its truth -----------------------------------------------------------


def simulation(seed: int, parcels: int = 30, **anomalies: float) -> Simulation:
    return simulate(
        SimulationConfig(seed=seed, parcels=parcels, start_ms=SIM_START_MS, anomalies=AnomalyRates(**anomalies))
    )


def state_mismatches(sim: Simulation, states: dict[str, dict[str, Any]]) -> list[str]:
    """Parcels whose latest ParcelState differs from the truth (status or the scans that reached it)."""
    wrong = []
    for tracking_number, truth in sim.truth.items():
        state = states.get(tracking_number)
        expected_status = classify(truth.final_code).status
        if (
            state is None
            or state["status"] != expected_status
            or {entry["event_id"] for entry in state["history"]} != set(truth.event_ids)
        ):
            wrong.append(tracking_number)
    return wrong


def wait_for_truth(sim: Simulation, states: TopicReader, workers: list[StageProcess], timeout: float = 90) -> None:
    def matches() -> bool:
        states.poll()
        return not state_mismatches(sim, states.latest_by_key())

    def describe() -> str:
        latest = states.latest_by_key()
        lines = []
        for tracking_number in state_mismatches(sim, latest)[:5]:
            truth, state = sim.truth[tracking_number], latest.get(tracking_number)
            got = "no state" if state is None else f"{state['status']} with {len(state['history'])} scans"
            expected = f"{classify(truth.final_code).status} with {len(truth.event_ids)} scans"
            lines.append(f"{tracking_number}: {got}, expected {expected}")
        return "; ".join(lines)

    wait_for(matches, timeout, f"final states of {len(sim.truth)} parcels", workers, describe)


def unit_scans_before_their_manifest(sim: Simulation) -> set[str]:
    manifested: set[str] = set()
    early: set[str] = set()
    for record in sim.records:
        if record.kind == "manifest":
            manifested.add(record.value["handling_unit"])
        elif record.value["handling_unit"] and record.value["handling_unit"] not in manifested:
            early.add(record.value["event_id"])
    return early


# --- the tests ---------------------------------------------------------------------------------


def test_simulated_traffic_ends_in_the_true_final_states(
    bootstrap_servers: str,
    topics_factory: Callable[..., TopicNames],
    stages: StageLauncher,
    readers: Callable[[str], TopicReader],
) -> None:
    topics = topics_factory(partitions=PARTITIONS)
    sim = simulation(seed=11, container_scan_before_manifest=1.0)
    early = unit_scans_before_their_manifest(sim)
    assert early, "the simulation should publish unit scans before their manifests"
    states = readers(topics.parcel_state)
    worker = stages.worker(topics, log_level=WORKER_LOG_LEVEL)

    publish_records(bootstrap_servers, topics, sim.records)
    wait_for_truth(sim, states, [worker])

    histories = [{entry["event_id"] for entry in state["history"]} for state in states.latest_by_key().values()]
    assert all(any(event_id in ids for ids in histories) for event_id in early)
    dead_letters = readers(topics.dead_letters)
    dead_letters.poll()
    assert dead_letters.records == []
    assert worker.metric_total("parcelstream_scans_ingested_total") >= len(
        {r.value["event_id"] for r in sim.records if r.kind == "scan"}
    )
    assert worker.stop() == 0


def test_poison_messages_are_dead_lettered_and_the_worker_goes_on(
    bootstrap_servers: str,
    topics_factory: Callable[..., TopicNames],
    stages: StageLauncher,
    readers: Callable[[str], TopicReader],
) -> None:
    topics = topics_factory(partitions=PARTITIONS)
    worker = stages.worker(topics, log_level=WORKER_LOG_LEVEL)
    publisher = Publisher(bootstrap_servers, topics)
    publisher._produce(topics.scans, b"garbage", b"\x13not avro at all", "garbage")
    publisher._produce(topics.scans, b"unknown", struct.pack(">bI", 0, 424_242) + b"\x02\x04", "unknown schema")
    publisher.publish_scan(scan("TELEPORTED", T0, "poison-1", tracking_number="LPPOISON01CN"))
    publisher.publish_scan(scan("ORDER_CREATED", T0, "good-1", tracking_number="LPGOOD001CN", with_shipment=shipment()))
    publisher.publish_scan(scan("ORIGIN_RECEIVED", T0 + HOUR, "good-2", tracking_number="LPGOOD001CN"))
    assert publisher.flush().ok

    dead_letters, states = readers(topics.dead_letters), readers(topics.parcel_state)

    def processed() -> bool:
        dead_letters.poll()
        states.poll()
        good = states.latest_by_key().get("LPGOOD001CN")
        return len(dead_letters.records) >= 3 and good is not None and good["version"] == 2

    wait_for(processed, 60, "dead letters and the good parcel", [worker])
    letters = {value["reason_code"]: value for _key, value in dead_letters.records}
    assert set(letters) == {"bad_magic_byte", "unknown_schema_id", "unknown_code"}
    assert letters["bad_magic_byte"]["payload"] == b"\x13not avro at all"
    assert all(letter["stage"] == "streams" and letter["source_topic"] == topics.scans for letter in letters.values())
    assert states.latest_by_key()["LPGOOD001CN"]["status"] == "InTransit"
    assert "LPPOISON01CN" not in states.latest_by_key()
    assert worker.alive


def test_sla_breach_fires_without_a_further_scan(
    bootstrap_servers: str,
    topics_factory: Callable[..., TopicNames],
    stages: StageLauncher,
    readers: Callable[[str], TopicReader],
) -> None:
    topics = topics_factory(partitions=PARTITIONS)
    # 100,000 event seconds per wall second: the 72 h silence rule passes in under 3 s.
    worker = stages.worker(topics, clock_speed=100_000, log_level=WORKER_LOG_LEVEL)
    publisher = Publisher(bootstrap_servers, topics)
    publisher.publish_scan(scan("ORDER_CREATED", T0, "o1", tracking_number="LPQUIET001CN", with_shipment=shipment()))
    publisher.publish_scan(scan("LINEHAUL_DEPARTED", T0 + 2 * HOUR, "o2", tracking_number="LPQUIET001CN"))
    assert publisher.flush().ok

    sla_events, states = readers(topics.sla_events), readers(topics.parcel_state)

    def silence_breached() -> bool:
        sla_events.poll()
        return any(event["rule"] == "silence" and event["kind"] == "breach" for _key, event in sla_events.records)

    wait_for(silence_breached, 60, "a silence breach", [worker])
    silence = [event for _key, event in sla_events.records if event["rule"] == "silence"]
    # At this speed the at-risk point and the deadline can fall in one timer sweep: then only the breach fires.
    assert [event["kind"] for event in silence].count("breach") == 1
    breach = next(event for event in silence if event["kind"] == "breach")
    assert breach["tracking_number"] == "LPQUIET001CN"
    assert breach["observed_ms"] >= breach["deadline_ms"] == T0 + 2 * HOUR + 72 * HOUR

    def breach_in_state() -> bool:
        states.poll()
        return "silence:breach" in states.latest_by_key().get("LPQUIET001CN", {}).get("open_sla", [])

    wait_for(breach_in_state, 30, "the breach in the parcel state", [worker])
    # No scan came after the second: the timer's change is a newer version, which consumers apply.
    assert states.latest_by_key()["LPQUIET001CN"]["version"] > 2


def committed_offsets(bootstrap_servers: str, group_id: str, topic: str) -> int:
    """Sum of the offsets ``group_id`` committed on ``topic`` (0 when none)."""
    probe = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": group_id, "log_level": 0})
    try:
        committed = probe.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10)
        return sum(max(tp.offset, 0) for tp in committed)
    finally:
        probe.close()


@pytest.mark.parametrize("first_commits", [True, False], ids=["killed-after-a-commit", "killed-before-any-commit"])
def test_a_killed_worker_restarts_from_its_changelog_without_conflicting_updates(
    bootstrap_servers: str,
    topics_factory: Callable[..., TopicNames],
    stages: StageLauncher,
    readers: Callable[[str], TopicReader],
    first_commits: bool,
) -> None:
    topics = topics_factory(partitions=PARTITIONS)
    sim = simulation(seed=23)
    half = len(sim.records) // 2
    states, updates = readers(topics.parcel_state), readers(topics.status_updates)
    # Before any commit, the restarted worker replays every input against the state it recovered.
    first = stages.worker(
        topics, name="first", log_level=WORKER_LOG_LEVEL, **({} if first_commits else {"commit_interval": "3600"})
    )
    publish_records(bootstrap_servers, topics, sim.records[:half])

    def processing() -> bool:
        states.poll()
        return len(states.records) >= 20

    wait_for(processing, 60, "the first worker's output", [first])
    group_id = f"{topics.prefix}-worker"
    if first_commits:
        wait_for(lambda: committed_offsets(bootstrap_servers, group_id, topics.scans) > 0, 30, "a commit", [first])
    first.kill()  # SIGKILL: no commit, no flush
    if not first_commits:
        assert committed_offsets(bootstrap_servers, group_id, topics.scans) == 0
    publish_records(bootstrap_servers, topics, sim.records[half:])
    second = stages.worker(topics, name="second", log_level=WORKER_LOG_LEVEL)
    wait_for_truth(sim, states, [second], timeout=120)

    updates.poll()
    by_id: dict[str, dict[str, Any]] = {}
    for _key, update in updates.records:
        assert by_id.setdefault(update["update_id"], update) == update, "one update id, two contents"
    delivered = {update["tracking_number"] for update in by_id.values() if update["status"] == "Delivered"}
    assert delivered == {tn for tn, truth in sim.truth.items() if classify(truth.final_code).status == "Delivered"}


def test_two_workers_split_the_partitions_and_agree_with_the_truth(
    bootstrap_servers: str,
    topics_factory: Callable[..., TopicNames],
    stages: StageLauncher,
    readers: Callable[[str], TopicReader],
) -> None:
    topics = topics_factory(partitions=PARTITIONS)
    workers = [stages.worker(topics, name=name, log_level=WORKER_LOG_LEVEL) for name in ("a", "b")]

    def split() -> bool:
        owned = [worker.owned_partitions(topics.scans) for worker in workers]
        return all(owned) and not (owned[0] & owned[1]) and (owned[0] | owned[1]) == set(range(PARTITIONS))

    wait_for(split, 90, "both workers to own scans partitions", workers)
    sim = simulation(seed=37)
    states = readers(topics.parcel_state)
    publish_records(bootstrap_servers, topics, sim.records)
    wait_for_truth(sim, states, workers)
    assert all(worker.metric_total("parcelstream_scans_ingested_total") > 0 for worker in workers)
