"""One record whose handling raises is dead-lettered (``processing_error``, with the exception
class) and the worker goes on with the others: for scans and for SLA due ticks."""

from __future__ import annotations

from typing import Any

import orjson

from schemas.codec import default_codec
from schemas.topics import TopicNames
from streams.core.clock import EventClock
from streams.core.rules import SlaRules
from streams.worker.processor import SLA_RETRY_MS, Output, Processor, SourceMessage
from tests.streams.builders import HOUR, T0, scan, shipment

TOPICS = TopicNames("isolation")
CODEC = default_codec()
BROKEN = "LP00000666CN"
HEALTHY = "LP00000001CN"
#: A stored value the core cannot load (its history is missing): any bug that makes a handler raise.
BROKEN_STATE = orjson.dumps({"tracking_number": BROKEN})


def decoded(outputs: list[Output], topic: str) -> list[dict[str, Any]]:
    return [CODEC.decode(output.value).value for output in outputs if output.topic == topic]


def scan_message(record: dict[str, Any], offset: int) -> SourceMessage:
    return SourceMessage(TOPICS.scans, 0, offset, record["tracking_number"].encode(), CODEC.encode("ScanEvent", record))


def test_isolation_a_scan_whose_handling_raises_is_dead_lettered_and_the_batch_goes_on() -> None:
    processor = Processor(TOPICS, SlaRules(), EventClock(1.0))
    parcels: dict[str, bytes] = {BROKEN: BROKEN_STATE}
    batch = processor.batch(parcels, {})
    batch.add(scan_message(scan("ORIGIN_RECEIVED", T0, "b1", tracking_number=BROKEN), 0), T0)
    batch.add(scan_message(scan("ORIGIN_RECEIVED", T0, "h1", tracking_number=HEALTHY), 1), T0)

    outputs = batch.outputs()
    [letter] = decoded(outputs, TOPICS.dead_letters)
    assert letter["reason_code"] == "processing_error" and letter["reason"].startswith("KeyError")
    assert letter["source_offset"] == 0 and letter["key"] == BROKEN.encode()
    assert [state["tracking_number"] for state in decoded(outputs, TOPICS.parcel_state)] == [HEALTHY]
    batch.write_state(parcels, {})
    assert parcels[BROKEN] == BROKEN_STATE


def test_isolation_an_sla_due_tick_whose_evaluation_raises_is_dead_lettered_and_re_armed() -> None:
    processor = Processor(TOPICS, SlaRules(), EventClock(1.0))
    parcels: dict[str, bytes] = {BROKEN: BROKEN_STATE}
    setup = processor.batch(parcels, {})
    order = scan("ORDER_CREATED", T0, "o1", tracking_number=HEALTHY, with_shipment=shipment())
    setup.add(scan_message(order, 0), T0)
    setup.add(scan_message(scan("LINEHAUL_DEPARTED", T0 + HOUR, "d1", tracking_number=HEALTHY), 1), T0)
    setup.write_state(parcels, {})

    tick = str(T0 + 100 * HOUR)
    due = SourceMessage("isolation-worker-sla-due", 2, 41, BROKEN.encode(), tick.encode())
    batch = processor.batch(parcels, {})
    batch.add_sla_due(BROKEN, T0, partition=2, tick=tick, source=due)
    batch.add_sla_due(HEALTHY, T0, partition=0, tick=tick)

    outputs = batch.outputs()
    [letter] = decoded(outputs, TOPICS.dead_letters)
    assert letter["reason_code"] == "processing_error" and letter["reason"].startswith("KeyError")
    assert (letter["source_topic"], letter["source_partition"], letter["source_offset"]) == (
        "isolation-worker-sla-due",
        2,
        41,
    )
    assert any(event["tracking_number"] == HEALTHY for event in decoded(outputs, TOPICS.sla_events))
    # The timer took the deadline off its schedule: it comes back, later in event time.
    deadlines = dict(batch.deadlines())
    assert deadlines[BROKEN] == int(tick) + SLA_RETRY_MS
    assert deadlines[HEALTHY] is not None
