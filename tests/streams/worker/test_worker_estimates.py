"""Learned delivery estimates in a real worker on the embedded broker: a partition's estimates
change once it has seen deliveries, and survive a restart (the ``estimates`` table)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from producers.publisher import Publisher
from producers.simulator.identifiers import make_tracking_number
from schemas.topics import TopicNames
from streams.worker.agents import key_partition
from tests.stages import PARTITIONS, StageLauncher, StageProcess, TopicReader, wait_for
from tests.streams.builders import DAY, HOUR, T0, location, scan, shipment

pytestmark = pytest.mark.integration

HUB = location("LGG-HUB-1", "facility", "BE")
WAREHOUSE = location("CN-HGH-WH1", "facility", "CN")
HUB_TO_DOOR_MS = 5 * HOUR  # the heuristic says 0.08-0.25 of the 10-day promise: 19-60 h


def same_partition_numbers() -> Iterator[str]:
    """Tracking numbers that all hash to one partition: one learner sees them all."""
    numbers = (make_tracking_number("LX", serial, "CN") for serial in itertools.count(1))
    first = next(numbers)
    yield first
    partition = key_partition(first, PARTITIONS)
    yield from (number for number in numbers if key_partition(number, PARTITIONS) == partition)


def to_hub(publisher: Publisher, tn: str) -> None:
    publisher.publish_scan(
        scan("ORDER_CREATED", T0, f"{tn}-o", tracking_number=tn, where=WAREHOUSE, with_shipment=shipment())
    )
    publisher.publish_scan(scan("HUB_RECEIVED", T0 + DAY, f"{tn}-h", tracking_number=tn, where=HUB))


def hub_window(updates: TopicReader, tn: str, workers: list[StageProcess]) -> tuple[int, int]:
    """(earliest, latest) - hub scan time of the parcel's hub StatusUpdate."""
    found: dict[str, Any] = {}

    def published() -> bool:
        updates.poll()
        for _key, update in updates.records:
            if update["tracking_number"] == tn and update["sub_status"] == "received_at_hub":
                found["window"] = update["estimated_delivery"]
        return "window" in found

    wait_for(published, 60, f"the hub update of {tn}", workers)
    window = found["window"]
    return window["earliest_ms"] - (T0 + DAY), window["latest_ms"] - (T0 + DAY)


def test_a_worker_estimates_from_the_deliveries_it_has_seen_and_after_a_restart(
    bootstrap_servers: str,
    topics_factory: Callable[..., TopicNames],
    stages: StageLauncher,
    readers: Callable[[str], TopicReader],
) -> None:
    topics = topics_factory(partitions=PARTITIONS)
    numbers = same_partition_numbers()
    updates = readers(topics.status_updates)
    worker = stages.worker(topics, name="learner", log_level="warning", estimate_min_deliveries="3")
    publisher = Publisher(bootstrap_servers, topics)

    before_tn = next(numbers)
    to_hub(publisher, before_tn)
    assert publisher.flush().ok
    before = hub_window(updates, before_tn, [worker])
    assert before == (int(0.08 * 10 * DAY), int(0.25 * 10 * DAY))  # no delivery seen: the heuristic

    delivered = [next(numbers) for _ in range(3)]
    for tn in delivered:
        to_hub(publisher, tn)
        publisher.publish_scan(scan("DELIVERED", T0 + DAY + HUB_TO_DOOR_MS, f"{tn}-d", tracking_number=tn, where=HUB))
    assert publisher.flush().ok

    def all_delivered() -> bool:
        updates.poll()
        return {u["tracking_number"] for _key, u in updates.records if u["status"] == "Delivered"} >= set(delivered)

    wait_for(all_delivered, 60, "three deliveries", [worker])
    after_tn = next(numbers)
    to_hub(publisher, after_tn)
    assert publisher.flush().ok
    assert hub_window(updates, after_tn, [worker]) == (HUB_TO_DOOR_MS, HUB_TO_DOOR_MS)

    assert worker.stop() == 0
    restarted = stages.worker(topics, name="restarted", log_level="warning", estimate_min_deliveries="3")
    restored_tn = next(numbers)
    to_hub(publisher, restored_tn)
    assert publisher.flush().ok
    # A new worker (no local state) recovers the learner from the estimates table's changelog.
    assert hub_window(updates, restored_tn, [restarted]) == (HUB_TO_DOOR_MS, HUB_TO_DOOR_MS)
