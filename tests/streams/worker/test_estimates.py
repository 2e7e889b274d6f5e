"""The worker's per-partition learners without Kafka: learning through the processor, table rows,
restore after a rebalance or a restart."""

from __future__ import annotations

from typing import Any

from producers.simulator.identifiers import make_tracking_number
from schemas.codec import default_codec
from schemas.topics import TopicNames
from streams.core.clock import EventClock
from streams.core.estimates import EstimateConfig
from streams.core.rules import SlaRules
from streams.worker.estimates import PartitionEstimates
from streams.worker.processor import Processor, SourceMessage
from tests.streams.builders import DAY, HOUR, T0, location, scan, shipment

TOPICS = TopicNames("unit")
CODEC = default_codec()
HUB = location("LGG-HUB-1", "facility", "BE")
WAREHOUSE = location("CN-HGH-WH1", "facility", "CN")
CONFIG = EstimateConfig(min_deliveries=3)


def tracking_number(serial: int) -> str:
    return make_tracking_number("LX", serial, "CN")


def journey(tn: str, hub_to_door_ms: int) -> list[dict[str, Any]]:
    return [
        scan("ORDER_CREATED", T0, tracking_number=tn, where=WAREHOUSE, with_shipment=shipment()),
        scan("HUB_RECEIVED", T0 + DAY, tracking_number=tn, where=HUB),
        scan("DELIVERED", T0 + DAY + hub_to_door_ms, tracking_number=tn, where=HUB),
    ]


def feed(processor: Processor, parcels: dict[str, bytes], records: list[dict[str, Any]], partition: int) -> list[Any]:
    updates = []
    for offset, record in enumerate(records):
        source = SourceMessage(
            TOPICS.scans, partition, offset, record["tracking_number"].encode(), CODEC.encode("ScanEvent", record)
        )
        batch = processor.batch(parcels, {})
        batch.add(source, T0)
        batch.write_state(parcels, {})
        updates += [CODEC.decode(o.value).value for o in batch.outputs() if o.topic == TOPICS.status_updates]
    return updates


def latest_at_hub(updates: list[dict[str, Any]]) -> int:
    at_hub = [u for u in updates if u["sub_status"] == "received_at_hub"]
    return at_hub[-1]["estimated_delivery"]["latest_ms"] - (T0 + DAY)


def test_a_partition_learns_from_its_deliveries_and_estimates_its_parcels_with_them() -> None:
    estimates = PartitionEstimates(CONFIG)
    processor = Processor(TOPICS, SlaRules(), EventClock(1.0), estimates=estimates)
    parcels: dict[str, bytes] = {}
    before = latest_at_hub(feed(processor, parcels, journey(tracking_number(900), 0)[:2], partition=1))
    for i in range(3):
        feed(processor, parcels, journey(tracking_number(i), 5 * HOUR), partition=1)
    learned = latest_at_hub(feed(processor, parcels, journey(tracking_number(901), 0)[:2], partition=1))
    other = latest_at_hub(feed(processor, parcels, journey(tracking_number(902), 0)[:2], partition=2))
    assert learned == 5 * HOUR != before
    assert other == before  # partition 2 has seen no delivery: the heuristic


def test_rows_round_trip_through_the_table_and_restore_only_owned_partitions() -> None:
    estimates = PartitionEstimates(CONFIG)
    processor = Processor(TOPICS, SlaRules(), EventClock(1.0), estimates=estimates)
    parcels: dict[str, bytes] = {}
    for partition in (0, 3):
        for i in range(3):
            feed(processor, parcels, journey(tracking_number(100 * partition + i), (partition + 2) * HOUR), partition)
    table: dict[str, bytes] = {}
    for _partition, key, value in estimates.changes():
        assert value is not None
        table[key] = value
    assert {key.split("/")[0] for key in table} == {"0", "3"}
    assert list(estimates.changes()) == []  # written once

    restarted = PartitionEstimates(CONFIG)
    assert restarted.restore([*table.items(), ("3/bad", b"{}"), ("junk", b"1")], owned={3}) == len(table) // 2
    assert set(restarted.learners) == {3}
    key = "CN-HGH-WH1|-|BE|received_at_hub|standard"
    assert (
        restarted.for_partition(3).window(key, 0) == estimates.for_partition(3).window(key, 0) == (5 * HOUR, 5 * HOUR)
    )
    assert list(restarted.changes()) == []  # nothing to write back
