"""Publisher batches: each batch gets the delivery report of its own records, also while other
batches are in flight, and records the broker never acknowledged are failures naming them."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from deploy.embedded import free_port
from producers.publisher import Publisher
from schemas.topics import TopicNames
from tests.producers.conftest import ReadMessage

pytestmark = pytest.mark.integration


def scan(event_id: str) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "tracking_number": f"LP{event_id}CN",
        "source": "flight",
        "code": "LINEHAUL_DEPARTED",
        "raw_code": "DEP",
        "raw_format": "iata-fsu",
        "carrier": "CK",
        "event_time_ms": 1_795_133_700_000,
        "recorded_time_ms": 1_795_133_700_000,
        "references": {},
    }


def test_concurrent_batches_get_their_own_reports(
    bootstrap_servers: str, topics: TopicNames, read_topic: Callable[[str, int], list[ReadMessage]]
) -> None:
    publisher = Publisher(bootstrap_servers, topics)
    reports = {}

    def send(name: str, count: int) -> None:
        batch = publisher.batch()
        for n in range(count):
            batch.publish_scan(scan(f"{name}-{n}"))
        if name == "b":
            batch.publish_dead_letter(reason_code="malformed_record", reason="test", payload=b"{}")
        reports[name] = batch.wait(30)

    threads = [threading.Thread(target=send, args=(name, count)) for name, count in (("a", 3), ("b", 5))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert reports["a"].ok and reports["b"].ok
    assert reports["a"].acknowledged == {topics.scans: 3}
    assert reports["b"].acknowledged == {topics.scans: 5, topics.dead_letters: 1}
    # The cumulative report keeps counting everything (its existing users rely on it).
    assert publisher.flush(10).acknowledged == {topics.scans: 8, topics.dead_letters: 1}
    assert len(read_topic(topics.scans, 8)) == 8


def test_unacknowledged_records_are_failures_of_their_batch(topics: TopicNames) -> None:
    publisher = Publisher(f"127.0.0.1:{free_port()}", topics, **{"message.timeout.ms": 500, "log_level": 0})
    batch = publisher.batch()
    batch.publish_scan(scan("1"), "records[0]")
    batch.publish_scan(scan("2"), "records[1]")
    report = batch.wait(5)
    assert not report.ok
    assert sorted(failure.reference for failure in report.failures) == ["records[0]", "records[1]"]
    assert batch.pending == 0
    assert not publisher.report.ok
