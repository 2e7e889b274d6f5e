"""The runner against the real broker: every simulated record arrives exactly once per send."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import REGISTRY

from producers.simulator import SimulationConfig, simulate
from producers.simulator.runner import RunSummary, SimulationRunner
from schemas.topics import TopicNames
from tests.producers.conftest import ReadMessage
from tests.producers.simulator.conftest import HIGH_RATES, START_MS

pytestmark = pytest.mark.integration


def _canonical(value: dict[str, Any]) -> str:
    return json.dumps(value, sort_keys=True)


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_speed_zero_publishes_every_record_once_per_send(
    bootstrap_servers: str, topics: TopicNames, read_topic: Callable[[str, int], list[ReadMessage]]
) -> None:
    simulation = simulate(SimulationConfig(seed=31, parcels=40, start_ms=START_MS, anomalies=HIGH_RATES))
    departed_before = _metric("parcelstream_scans_published_total", source="flight", code="LINEHAUL_DEPARTED")
    runner = SimulationRunner(bootstrap_servers, topics, speed=0)

    summary = runner.run(simulation)

    assert summary.ok and not summary.interrupted
    assert summary.acknowledged == summary.sent
    assert summary.total_sent == len(simulation.records)
    expected_scans = Counter(_canonical(r.value) for r in simulation.records if r.kind == "scan")
    expected_manifests = Counter(_canonical(r.value) for r in simulation.records if r.kind == "manifest")
    assert any(count > 1 for count in expected_scans.values())  # duplicates are sent as such
    scans = read_topic(topics.scans, expected_scans.total())
    manifests = read_topic(topics.manifests, expected_manifests.total())
    assert Counter(_canonical(m.decoded.value) for m in scans) == expected_scans
    assert Counter(_canonical(m.decoded.value) for m in manifests) == expected_manifests
    # Keys: parcel scans by tracking number, unit scans and manifests by unit id.
    for message in scans:
        value = message.decoded.value
        assert message.key == (value["tracking_number"] or value["handling_unit"]).encode()
    assert all(m.key == m.decoded.value["handling_unit"].encode() for m in manifests)
    departed = sum(1 for r in simulation.records if r.kind == "scan" and r.value["code"] == "LINEHAUL_DEPARTED")
    departed_flights = sum(
        1
        for r in simulation.records
        if r.kind == "scan" and r.value["code"] == "LINEHAUL_DEPARTED" and r.value["source"] == "flight"
    )
    assert departed > 0
    assert (
        _metric("parcelstream_scans_published_total", source="flight", code="LINEHAUL_DEPARTED") - departed_before
        == departed_flights
    )


def test_continuous_generation_stops_cleanly_on_request(
    bootstrap_servers: str, topics: TopicNames, read_topic: Callable[[str, int], list[ReadMessage]]
) -> None:
    """Generated hour by hour at 100 simulated hours per wall second; a stop request ends the run
    after a flush, with every sent record acknowledged and on the topics."""
    progress: list[int] = []

    def stop_after_some_traffic(summary: RunSummary) -> None:
        progress.append(summary.total_sent)
        if summary.total_sent >= 300:
            runner.stop.set()

    runner = SimulationRunner(bootstrap_servers, topics, speed=360_000, on_progress=stop_after_some_traffic)
    config = SimulationConfig(seed=32, start_ms=START_MS)

    summary = runner.run_continuous(config, rate=30, duration=60)

    assert summary.interrupted
    assert summary.ok
    assert summary.total_sent >= 300
    assert summary.acknowledged == summary.sent
    assert summary.parcels >= 30
    assert summary.not_yet_due > 0
    scans = read_topic(topics.scans, summary.sent.total() - summary.sent["manifest"])
    manifests = read_topic(topics.manifests, summary.sent["manifest"])
    assert len(scans) + len(manifests) == summary.total_sent
