"""Batches (``Processor.batch``): the same results as one message at a time, with each key decoded
and stored once per batch, one ParcelState per changed parcel, and a failed message undone."""

from __future__ import annotations

import random
from collections import deque
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from schemas.codec import default_codec
from schemas.topics import TopicNames
from streams.core.clock import EventClock
from streams.core.parcel import Parcel
from streams.core.rules import SlaRules
from streams.worker.processor import Output, Processor, SourceMessage, WarmCache, loads, read_outbox
from streams.worker.serde import decode_parcel
from tests.streams.builders import HOUR, T0, scan, shipment
from tests.streams.core.test_properties import Journey, journeys

TOPICS = TopicNames("batch")
CODEC = default_codec()
TN = "LP00123456789CN"


class CountingTable(dict[str, bytes]):
    """A dict table that counts its writes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def __setitem__(self, key: str, value: bytes) -> None:
        self.writes += 1
        super().__setitem__(key, value)


def encoded(kind: str, value: dict[str, Any], offset: int) -> SourceMessage:
    if kind == "manifest":
        return SourceMessage(
            TOPICS.manifests, 0, offset, value["handling_unit"].encode(), CODEC.encode("Manifest", value)
        )
    key = (value["tracking_number"] or value["handling_unit"]).encode()
    return SourceMessage(TOPICS.scans, 0, offset, key, CODEC.encode("ScanEvent", value))


def decoded(outputs: list[Output], topic: str) -> list[dict[str, Any]]:
    return [CODEC.decode(output.value).value for output in outputs if output.topic == topic]


def run(messages: list[SourceMessage], batch_sizes: random.Random | None) -> tuple[dict[str, Any], list[Output]]:
    """Process the messages (fan-out copies fed back at the end of the queue) one at a time, or in
    batches of random sizes with a small warm cache cleared now and then (rebalances); returns the
    decoded tables and every output."""
    processor = Processor(TOPICS, SlaRules(), EventClock(1.0))
    parcels: dict[str, bytes] = {}
    units: dict[str, bytes] = {}
    queue = deque(messages)
    outputs: list[Output] = []
    offset = len(messages)
    warm = WarmCache(3)
    while queue:
        size = 1 if batch_sizes is None else batch_sizes.randint(1, 8)
        if batch_sizes is not None and batch_sizes.random() < 0.2:
            warm.clear()
        batch = processor.batch(parcels, units, None if batch_sizes is None else warm)
        for _ in range(min(size, len(queue))):
            batch.add(queue.popleft(), T0)
        for output in batch.outputs():
            outputs.append(output)
            if output.topic == TOPICS.scans_fanout:
                offset += 1
                queue.append(SourceMessage(output.topic, 0, offset, output.key, output.value))
        batch.write_state(parcels, units)
        batch.state.keep_warm()
    tables = {
        "parcels": {k: stored_record(v) for k, v in parcels.items()},
        "units": {k: loads(v) for k, v in units.items()},
    }
    return tables, outputs


def stored_record(value: bytes) -> dict[str, Any]:
    """A stored parcel as its ParcelState dict (history decoded)."""
    return decode_parcel(value, Processor(TOPICS, SlaRules(), EventClock(1.0)).entries).to_record()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(journey=journeys(), seed=st.randoms(use_true_random=False))
def test_batches_end_in_the_same_tables_updates_and_states_as_single_messages(
    journey: Journey, seed: random.Random
) -> None:
    messages = [encoded(kind, value, offset) for offset, (kind, value) in enumerate(journey.messages)]
    single_tables, single_outputs = run(messages, None)
    batched_tables, batched_outputs = run(messages, seed)

    assert batched_tables == single_tables
    single_updates = decoded(single_outputs, TOPICS.status_updates)
    batched_updates = decoded(batched_outputs, TOPICS.status_updates)
    assert sorted(u["update_id"] for u in batched_updates) == sorted(u["update_id"] for u in single_updates)

    def latest_states(outputs: list[Output]) -> dict[str, dict[str, Any]]:
        return {state["tracking_number"]: state for state in decoded(outputs, TOPICS.parcel_state)}

    assert latest_states(batched_outputs) == latest_states(single_outputs)


def test_a_batch_decodes_and_stores_each_key_once_and_publishes_its_latest_state() -> None:
    processor = Processor(TOPICS, SlaRules(), EventClock(1.0))
    parcels, units = CountingTable(), CountingTable()
    batch = processor.batch(parcels, units)
    batch.add(encoded("scan", scan("ORDER_CREATED", T0, "e1", with_shipment=shipment()), 0), T0)
    batch.add(encoded("scan", scan("ORIGIN_RECEIVED", T0 + HOUR, "e2"), 1), T0)
    batch.add(encoded("scan", scan("ORIGIN_RECEIVED", T0 + HOUR, "e2"), 2), T0)  # a duplicate

    outputs = batch.outputs()
    states = decoded(outputs, TOPICS.parcel_state)
    assert [state["last_event_id"] for state in states] == ["e2"]
    # The duplicate publishes nothing: what e2 produced is in the batch's outbox.
    updates = [output for output in outputs if output.topic == TOPICS.status_updates]
    assert [update["status"] for update in decoded(outputs, TOPICS.status_updates)] == ["InfoReceived", "InTransit"]
    assert parcels.writes == 0  # the caller stores the batch's state (then publishes its outputs)
    outbox: dict[str, bytes] = {}
    assert batch.write_state(parcels, units, outbox) == 2  # the parcel and the outbox of its partition
    assert parcels.writes == 1
    kept = [output for key in sorted(outbox) for output in read_outbox(outbox, key)]
    assert [(t, k, v) for t, k, v in kept if t == TOPICS.status_updates] == [(o.topic, o.key, o.value) for o in updates]
    assert (TOPICS.parcel_state, TN.encode(), b"") in kept  # its current state is published again
    assert [entry["event_id"] for entry in stored_record(parcels[TN])["history"]] == ["e1", "e2"]
    [(tracking_number, deadline)] = batch.deadlines()
    assert tracking_number == TN and deadline is not None


class FailingRules(SlaRules):
    """Rules that fail for one service level: the core raises after it has changed the parcel."""

    def promise_for(self, service_level: str | None) -> int:
        if service_level == "economy":
            raise RuntimeError("no promise for economy")
        return super().promise_for(service_level)


def test_a_message_that_fails_half_way_is_undone_and_dead_lettered_and_the_batch_goes_on() -> None:
    processor = Processor(TOPICS, FailingRules(), EventClock(1.0))
    parcels: dict[str, bytes] = {}
    batch = processor.batch(parcels, {})
    batch.add(encoded("scan", scan("ORIGIN_RECEIVED", T0, "e1"), 0), T0)
    failing = scan("ORDER_CREATED", T0 - HOUR, "e0", with_shipment=shipment("economy", ordered_ms=T0 - HOUR))
    batch.add(encoded("scan", failing, 1), T0)
    batch.add(encoded("scan", scan("ORIGIN_SORTED", T0 + HOUR, "e2"), 2), T0)

    outputs = batch.outputs()
    [dead_letter] = decoded(outputs, TOPICS.dead_letters)
    assert dead_letter["reason_code"] == "processing_error" and dead_letter["source_offset"] == 1
    batch.write_state(parcels, {})
    stored = stored_record(parcels[TN])
    assert [entry["event_id"] for entry in stored["history"]] == ["e1", "e2"]
    assert stored["service_level"] is None
    assert [state["version"] for state in decoded(outputs, TOPICS.parcel_state)] == [2]


def test_a_failure_on_the_first_change_of_a_key_leaves_its_stored_value() -> None:
    processor = Processor(TOPICS, FailingRules(), EventClock(1.0))
    parcels: dict[str, bytes] = {}
    first = processor.batch(parcels, {})
    first.add(encoded("scan", scan("ORDER_CREATED", T0, "e1", with_shipment=shipment()), 0), T0)
    first.write_state(parcels, {})
    stored = parcels[TN]

    second = processor.batch(parcels, {})
    failing = scan("ORIGIN_RECEIVED", T0 - HOUR, "e0", with_shipment=shipment("economy", ordered_ms=T0 - HOUR))
    second.add(encoded("scan", failing, 1), T0)
    second.add(encoded("scan", scan("ORIGIN_SORTED", T0 + HOUR, "e2"), 2), T0)
    second.write_state(parcels, {})

    assert [entry["event_id"] for entry in stored_record(parcels[TN])["history"]] == ["e1", "e2"]
    assert stored_record(stored)["history"][0]["event_id"] == "e1"


class CountingReads(dict[str, bytes]):
    """A dict table that counts its reads."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def get(self, key: str, default: Any = None) -> Any:
        self.reads += 1
        return super().get(key, default)


def test_a_warm_cache_spares_the_table_reads_of_the_next_batches_until_it_is_cleared() -> None:
    processor = Processor(TOPICS, SlaRules(), EventClock(1.0))
    parcels, warm = CountingReads(), WarmCache(100)
    first = processor.batch(parcels, {}, warm)
    first.add(encoded("scan", scan("ORDER_CREATED", T0, "e1", with_shipment=shipment()), 0), T0)
    first.write_state(parcels, {})
    first.state.keep_warm()
    reads = parcels.reads

    second = processor.batch(parcels, {}, warm)
    second.add(encoded("scan", scan("ORIGIN_RECEIVED", T0 + HOUR, "e2"), 1), T0)
    second.write_state(parcels, {})
    second.state.keep_warm()
    assert parcels.reads == reads
    assert [entry["event_id"] for entry in stored_record(parcels[TN])["history"]] == ["e1", "e2"]

    warm.clear()  # a rebalance
    third = processor.batch(parcels, {}, warm)
    third.add(encoded("scan", scan("ORIGIN_SORTED", T0 + 2 * HOUR, "e3"), 2), T0)
    assert parcels.reads == reads + 1
    third.write_state(parcels, {})
    assert [entry["event_id"] for entry in stored_record(parcels[TN])["history"]] == ["e1", "e2", "e3"]


def test_a_batch_begun_before_a_clear_keeps_nothing_and_a_failed_message_leaves_no_half_changed_object() -> None:
    processor = Processor(TOPICS, FailingRules(), EventClock(1.0))
    parcels: dict[str, bytes] = {}
    warm = WarmCache(100)
    batch = processor.batch(parcels, {}, warm)
    batch.add(encoded("scan", scan("ORDER_CREATED", T0, "e1", with_shipment=shipment()), 0), T0)
    batch.write_state(parcels, {})
    warm.clear()  # a rebalance while the batch ran
    batch.state.keep_warm()
    assert len(warm) == 0

    kept = processor.batch(parcels, {}, warm)
    kept.add(encoded("scan", scan("ORIGIN_RECEIVED", T0 + HOUR, "e2"), 1), T0)
    kept.write_state(parcels, {})
    kept.state.keep_warm()
    assert len(warm) == 1

    failing = processor.batch(parcels, {}, warm)
    economy = scan("ORIGIN_SORTED", T0 - HOUR, "e0", with_shipment=shipment("economy", ordered_ms=T0 - HOUR))
    failing.add(encoded("scan", economy, 2), T0)
    assert len(warm) == 0  # the kept parcel was the one the failed message half changed
    failing.add(encoded("scan", scan("HUB_RECEIVED", T0 + 2 * HOUR, "e3"), 3), T0)
    failing.write_state(parcels, {})
    assert [entry["event_id"] for entry in stored_record(parcels[TN])["history"]] == ["e1", "e2", "e3"]


def test_the_warm_cache_keeps_at_most_its_size_dropping_the_oldest() -> None:
    processor = Processor(TOPICS, SlaRules(), EventClock(1.0))
    parcels: dict[str, bytes] = {}
    warm = WarmCache(2)
    for index, number in enumerate(["LP00000001CN", "LP00000002CN", "LP00000003CN"]):
        batch = processor.batch(parcels, {}, warm)
        batch.add(encoded("scan", scan("ORDER_CREATED", T0, f"e{index}", tracking_number=number), index), T0)
        batch.write_state(parcels, {})
        batch.state.keep_warm()
    assert len(warm) == 2
    assert warm.get("parcels", "LP00000001CN") is None
    assert warm.get("parcels", "LP00000003CN") is not None


def test_the_warm_cache_keeps_the_decoded_entries_of_its_newest_parcels_only() -> None:
    """A late scan decodes the history; the warm cache keeps it decoded for the parcel's next late
    scans (unit fan-out copies), for its ``max_decoded`` newest parcels only (memory)."""
    processor = Processor(TOPICS, SlaRules(), EventClock(1.0))
    parcels: dict[str, bytes] = {}
    warm = WarmCache(100, max_decoded=1)
    numbers = ["LP00000001CN", "LP00000002CN"]
    for index, number in enumerate(numbers):
        batch = processor.batch(parcels, {}, warm)
        order = scan("ORDER_CREATED", T0, f"{number}-1", tracking_number=number, with_shipment=shipment())
        batch.add(encoded("scan", order, 3 * index), T0)
        batch.add(
            encoded("scan", scan("HUB_RECEIVED", T0 + 2 * HOUR, f"{number}-3", tracking_number=number), 3 * index + 1),
            T0,
        )
        late = scan("ORIGIN_RECEIVED", T0 + HOUR, f"{number}-2", tracking_number=number)
        batch.add(encoded("scan", late, 3 * index + 2), T0)  # decodes the history
        batch.write_state(parcels, {})
        batch.state.keep_warm()
    first, second = (warm.get("parcels", number) for number in numbers)
    assert isinstance(first, Parcel) and isinstance(second, Parcel)
    assert first.history.decoded is None  # the oldest: back to bytes only
    assert second.history.decoded is not None
    assert [entry["event_id"] for entry in second.history.decoded] == [f"{numbers[1]}-{n}" for n in (1, 2, 3)]
    assert first.history.entries() == decode_parcel(parcels[numbers[0]], first.history.codec).history.entries()


def status_updates_total(status: str) -> float:
    return REGISTRY.get_sample_value("parcelstream_status_updates_total", {"status": status}) or 0.0


def test_status_updates_are_counted_once_per_batch_when_it_is_done_and_re_sends_not_at_all() -> None:
    processor = Processor(TOPICS, SlaRules(), EventClock(1.0))
    before = {status: status_updates_total(status) for status in ("InfoReceived", "InTransit")}
    batch = processor.batch({}, {})
    batch.add(encoded("scan", scan("ORDER_CREATED", T0, "e1", with_shipment=shipment()), 0), T0)
    batch.add(encoded("scan", scan("ORIGIN_RECEIVED", T0 + HOUR, "e2"), 1), T0)
    batch.add(encoded("scan", scan("ORIGIN_RECEIVED", T0 + HOUR, "e2"), 2), T0)  # re-sends e2's update
    assert status_updates_total("InTransit") == before["InTransit"]  # nothing counted mid-batch
    batch.count_metrics()
    assert status_updates_total("InfoReceived") == before["InfoReceived"] + 1
    assert status_updates_total("InTransit") == before["InTransit"] + 1
    batch.count_metrics()  # counted once
    assert status_updates_total("InTransit") == before["InTransit"] + 1
