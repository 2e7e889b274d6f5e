"""The worker's message handling without Kafka: decoding, routing, outputs and dead letters."""

from __future__ import annotations

import logging
import struct
from typing import Any

import orjson
import pytest
from prometheus_client import REGISTRY

from schemas.codec import default_codec
from schemas.topics import TopicNames
from streams.core.clock import EventClock
from streams.core.rules import SlaRules
from streams.worker.processor import Output, Processor, Result, SourceMessage
from tests.streams.builders import HOUR, T0, manifest, scan, shipment

TOPICS = TopicNames("unit")
CODEC = default_codec()


def make_processor(speed: float = 1.0) -> Processor:
    return Processor(TOPICS, SlaRules(), EventClock(speed))


def message(value: bytes | None, key: bytes | None, topic: str = TOPICS.scans, offset: int = 0) -> SourceMessage:
    return SourceMessage(topic, 0, offset, key, value)


def scan_message(record: dict[str, Any], offset: int = 0) -> SourceMessage:
    key = (record["tracking_number"] or record["handling_unit"]).encode()
    return message(CODEC.encode("ScanEvent", record), key, offset=offset)


def decoded(outputs: list[Output], topic: str) -> list[dict[str, Any]]:
    return [CODEC.decode(output.value).value for output in outputs if output.topic == topic]


class Tables:
    def __init__(self) -> None:
        self.parcels: dict[str, bytes] = {}
        self.units: dict[str, bytes] = {}

    def run(self, processor: Processor, source: SourceMessage, wall_ms: int = T0) -> Result:
        result = processor.handle(source, self.parcels, self.units, wall_ms)
        result.write_state(self.parcels, self.units)
        return result


def test_a_parcel_scan_publishes_state_and_status_update_and_stores_the_parcel() -> None:
    processor, tables = make_processor(), Tables()
    result = tables.run(processor, scan_message(scan("ORDER_CREATED", T0, "e1", with_shipment=shipment())))

    states = decoded(result.outputs, TOPICS.parcel_state)
    updates = decoded(result.outputs, TOPICS.status_updates)
    assert [state["status"] for state in states] == ["InfoReceived"]
    assert [update["status"] for update in updates] == ["InfoReceived"]
    assert all(output.key == b"LP00123456789CN" for output in result.outputs)
    stored = orjson.loads(tables.parcels["LP00123456789CN"])
    assert stored["history"][0]["event_id"] == "e1"
    assert result.deadline is not None and result.deadline[1] is not None


def test_the_same_scan_again_re_sends_the_same_records_and_stores_nothing() -> None:
    processor, tables = make_processor(), Tables()
    record = scan("ORIGIN_RECEIVED", T0, "e1")
    first = tables.run(processor, scan_message(record, offset=0))
    second = tables.run(processor, scan_message(record, offset=1), wall_ms=T0 + 10**9)  # even on a later clock
    assert first.outputs and second.outputs == first.outputs
    assert second.parcel_state is None


def test_a_duplicate_older_than_the_record_publishes_nothing() -> None:
    processor, tables = make_processor(), Tables()
    scans = [scan("HUB_SORTED" if n % 2 else "HUB_MISSORTED", T0 + n * HOUR, f"e{n}") for n in range(40)]
    for offset, record in enumerate(scans):
        tables.run(processor, scan_message(record, offset=offset))
    again = tables.run(processor, scan_message(scans[0], offset=40))
    assert again.outputs == [] and again.parcel_state is None


def test_scans_and_manifests_with_identifiers_off_the_contract_are_dead_lettered() -> None:
    processor, tables = make_processor(), Tables()
    injected = "LX<script>alert(1)</script>"
    bad_scan = scan("ORIGIN_RECEIVED", T0, "bad-1", tracking_number=injected)
    bad_manifest = manifest("m-bad", "BAG-001", ["LP00123456789CN", "lp 1; DROP"], time_ms=T0)
    results = [
        tables.run(processor, scan_message(bad_scan)),
        tables.run(processor, message(CODEC.encode("Manifest", bad_manifest), b"BAG-001", TOPICS.manifests, 1)),
    ]
    for result in results:
        [dead_letter] = decoded(result.outputs, TOPICS.dead_letters)
        assert dead_letter["reason_code"] == "invalid_identifier"
        assert [o.topic for o in result.outputs] == [TOPICS.dead_letters]
    assert "tracking_number" in decoded(results[0].outputs, TOPICS.dead_letters)[0]["reason"]
    assert "members[1]" in decoded(results[1].outputs, TOPICS.dead_letters)[0]["reason"]
    assert tables.parcels == {} and tables.units == {}


def test_dead_letters_log_the_reason_code_and_source_but_not_the_carrier_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    processor, tables = make_processor(), Tables()
    record = scan("ORIGIN_RECEIVED", T0, "pii-1")
    record["code"] = "NOT_A_CODE jane.doe@example.com"
    with caplog.at_level(logging.WARNING, logger="streams.worker.processor"):
        result = tables.run(processor, scan_message(record, offset=7))
    [dead_letter] = decoded(result.outputs, TOPICS.dead_letters)
    assert "jane.doe@example.com" in dead_letter["reason"]  # the full reason is on the topic
    assert "jane.doe@example.com" not in caplog.text
    assert f"{TOPICS.scans}[0]@7: unknown_code" in caplog.text


def test_state_is_written_only_by_write_state() -> None:
    processor, parcels, units = make_processor(), {}, {}
    result = processor.handle(scan_message(scan("ORIGIN_RECEIVED", T0, "e1")), parcels, units, T0)
    assert parcels == {}
    result.write_state(parcels, units)
    assert set(parcels) == {"LP00123456789CN"}


def test_unit_scan_before_its_manifest_reaches_the_parcels_through_fanout() -> None:
    processor, tables = make_processor(), Tables()
    unit_scan = scan("LINEHAUL_DEPARTED", T0, "d1", tracking_number=None, handling_unit="BAG1", source="flight")
    assert decoded(tables.run(processor, scan_message(unit_scan)).outputs, TOPICS.scans_fanout) == []

    bag = manifest("m1", "BAG1", ["LP00000001CN", "LP00000002CN"], time_ms=T0 - HOUR)
    result = tables.run(processor, message(CODEC.encode("Manifest", bag), b"BAG1", topic=TOPICS.manifests))

    fanout = [output for output in result.outputs if output.topic == TOPICS.scans_fanout]
    assert sorted(output.key for output in fanout) == [b"LP00000001CN", b"LP00000002CN"]
    copies = decoded(fanout, TOPICS.scans_fanout)
    assert {copy["event_id"] for copy in copies} == {"d1"}
    assert {copy["references"]["bag"] for copy in copies} == {"BAG1"}

    # The copy, read back from scans-fanout, becomes the parcel's scan.
    copy_message = SourceMessage(TOPICS.scans_fanout, 0, 0, fanout[0].key, fanout[0].value)
    states = decoded(tables.run(processor, copy_message).outputs, TOPICS.parcel_state)
    assert [state["status"] for state in states] == ["InTransit"]


def _single_dead_letter(result: Result) -> dict[str, Any]:
    assert result.dead_lettered
    assert [output.topic for output in result.outputs] == [TOPICS.dead_letters]
    letter = CODEC.decode(result.outputs[0].value, expect="DeadLetter").value
    assert letter["stage"] == "streams"
    assert letter["reason"]
    return letter


def test_garbage_bytes_are_dead_lettered_with_source_and_payload() -> None:
    processor, tables = make_processor(), Tables()
    letter = _single_dead_letter(tables.run(processor, message(b"not avro at all", b"k1", offset=41)))
    assert letter["reason_code"] == "bad_magic_byte"
    assert (letter["source_topic"], letter["source_partition"], letter["source_offset"]) == (TOPICS.scans, 0, 41)
    assert (letter["key"], letter["payload"]) == (b"k1", b"not avro at all")
    assert tables.parcels == {} and tables.units == {}


def test_unknown_schema_id_and_unknown_code_and_no_subject_are_dead_lettered() -> None:
    processor, tables = make_processor(), Tables()
    unknown_schema = struct.pack(">bI", 0, 999_999) + b"\x02"
    assert _single_dead_letter(tables.run(processor, message(unknown_schema, b"k")))["reason_code"] == (
        "unknown_schema_id"
    )
    teleported = scan("TELEPORTED", T0, "x1")
    assert _single_dead_letter(tables.run(processor, scan_message(teleported)))["reason_code"] == "unknown_code"
    nobody = scan("ORIGIN_RECEIVED", T0, "x2", tracking_number=None)
    letter = _single_dead_letter(tables.run(processor, message(CODEC.encode("ScanEvent", nobody), None)))
    assert letter["reason_code"] == "malformed_record"
    assert tables.parcels == {}


def test_a_record_keyed_by_another_subject_is_dead_lettered() -> None:
    processor, tables = make_processor(), Tables()
    record = scan("ORIGIN_RECEIVED", T0, "e1")
    letter = _single_dead_letter(tables.run(processor, message(CODEC.encode("ScanEvent", record), b"OTHER")))
    assert letter["reason_code"] == "wrong_key"


def test_a_record_that_is_no_input_type_is_dead_lettered() -> None:
    processor, tables = make_processor(), Tables()
    value = CODEC.encode(
        "SlaEvent",
        {
            "sla_event_id": "s",
            "tracking_number": "P1",
            "rule": "silence",
            "kind": "breach",
            "deadline_ms": T0,
            "observed_ms": T0,
        },
    )
    assert _single_dead_letter(tables.run(processor, message(value, b"P1")))["reason_code"] == "unexpected_record"


def test_dead_letter_ids_are_stable_per_source_message() -> None:
    processor, tables = make_processor(), Tables()
    first = _single_dead_letter(tables.run(processor, message(b"junk", None, offset=7)))
    again = _single_dead_letter(tables.run(processor, message(b"junk", None, offset=7)))
    other = _single_dead_letter(tables.run(processor, message(b"junk", None, offset=8)))
    assert first["dead_letter_id"] == again["dead_letter_id"] != other["dead_letter_id"]


def test_sla_due_fires_a_breach_without_a_new_scan_and_then_nothing_more() -> None:
    # Clock speed 1000: 80 wall seconds are ~22 event hours.
    processor, tables = make_processor(speed=1000), Tables()
    result = tables.run(processor, scan_message(scan("LINEHAUL_DEPARTED", T0, "e1")), wall_ms=0)
    tracking_number, deadline = result.deadline
    assert deadline is not None and deadline > T0

    wall_when_due = (deadline - T0) // 1000 + 1
    due = processor.handle_sla_due(tracking_number, tables.parcels, wall_when_due)
    events = decoded(due.outputs, TOPICS.sla_events)
    assert events and all(event["deadline_ms"] >= deadline for event in events)
    assert decoded(due.outputs, TOPICS.parcel_state)[0]["open_sla"]
    due.write_state(tables.parcels, tables.units)
    later = str(processor.clock.now_ms(wall_when_due + 1))
    assert processor.handle_sla_due(tracking_number, tables.parcels, wall_when_due + 1, later).outputs == []


def _sla_events_counted(labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value("parcelstream_sla_events_total", labels) or 0.0


def test_sla_events_are_counted_per_rule_kind_route_and_the_events_carrier() -> None:
    # A carrier code no other test uses, so the counter's other increments do not interfere.
    carrier = "SLA-LABEL-TEST"
    processor, tables = make_processor(speed=1.0), Tables()
    result = tables.run(processor, scan_message(scan("LINEHAUL_DEPARTED", T0, "e1", carrier=carrier)), wall_ms=0)
    tracking_number, deadline = result.deadline
    labels = {"rule": "silence", "kind": "at_risk", "route": "unknown", "carrier": carrier}
    before = _sla_events_counted(labels)

    due = processor.handle_sla_due(tracking_number, tables.parcels, 0, str(deadline))
    (event,) = decoded(due.outputs, TOPICS.sla_events)
    assert (event["rule"], event["kind"], event["route"], event["carrier"]) == ("silence", "at_risk", None, carrier)
    assert _sla_events_counted(labels) == before + 1
    due.write_state(tables.parcels, tables.units)
    # Re-sent on a replayed tick: published again, not counted again.
    again = processor.handle_sla_due(tracking_number, tables.parcels, 0, str(deadline))
    assert decoded(again.outputs, TOPICS.sla_events) == [event]
    assert _sla_events_counted(labels) == before + 1


def test_a_route_of_free_text_counts_as_other_in_the_sla_metric() -> None:
    # Location codes are whatever a publisher wrote: an address must not become a route label.
    carrier = "ROUTE-LABEL-TEST"
    where = {"code": "Rue de la Loi 16", "kind": "facility", "country": "BE", "name": None}
    processor, tables = make_processor(speed=1.0), Tables()
    departed = scan("LINEHAUL_DEPARTED", T0, "e1", carrier=carrier, where=where)
    tracking_number, deadline = tables.run(processor, scan_message(departed), wall_ms=0).deadline
    labels = {"rule": "silence", "kind": "at_risk", "route": "other", "carrier": carrier}
    before = _sla_events_counted(labels)

    due = processor.handle_sla_due(tracking_number, tables.parcels, 0, str(deadline))
    (event,) = decoded(due.outputs, TOPICS.sla_events)
    assert event["route"] == "Rue de la Loi 16"  # the event keeps it; only the metric label is bounded
    assert _sla_events_counted(labels) == before + 1


def test_a_replayed_sla_due_tick_re_sends_its_events_and_the_parcel_state() -> None:
    processor, tables = make_processor(speed=1.0), Tables()
    result = tables.run(processor, scan_message(scan("LINEHAUL_DEPARTED", T0, "e1")), wall_ms=0)
    tracking_number, deadline = result.deadline
    tick = str(deadline + HOUR)  # the timer's clock when it sent the parcel to sla-due
    due = processor.handle_sla_due(tracking_number, tables.parcels, 0, tick)
    events = decoded(due.outputs, TOPICS.sla_events)
    assert events and {event["observed_ms"] for event in events} == {deadline + HOUR}
    due.write_state(tables.parcels, tables.units)
    # Stored, then killed before publishing: the replayed tick, even on a later clock, re-sends them.
    again = processor.handle_sla_due(tracking_number, tables.parcels, 10**9, tick)
    assert [o for o in again.outputs if o.topic == TOPICS.sla_events] == [
        o for o in due.outputs if o.topic == TOPICS.sla_events
    ]
    assert decoded(again.outputs, TOPICS.parcel_state) == decoded(due.outputs, TOPICS.parcel_state)
    assert again.parcel_state is None  # nothing to store
    assert due.deadline is not None and (due.deadline[1] is None or due.deadline[1] > deadline)


def test_sla_due_for_an_unknown_parcel_does_nothing() -> None:
    assert make_processor().handle_sla_due("NOPE", {}, T0).outputs == []


def test_deadline_of_a_stored_parcel() -> None:
    processor, tables = make_processor(), Tables()
    result = tables.run(processor, scan_message(scan("LINEHAUL_DEPARTED", T0, "e1")))
    assert processor.deadline_of(tables.parcels["LP00123456789CN"]) == result.deadline[1]
    assert processor.deadline_of(b"{not json") is None


def test_stage_dwell_and_transit_are_observed_once_per_stay_with_bounded_labels() -> None:
    processor, tables = make_processor(), Tables()
    labels = {"stage": "hub", "route": "CN-BE"}

    def sample(name: str, labels: dict[str, str]) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    dwell_before = sample("parcelstream_stage_dwell_seconds_count", labels)
    transit_labels = {"route": "CN-BE", "service_level": "express"}
    transit_before = sample("parcelstream_transit_seconds_sum", transit_labels)
    journey = [
        scan("ORDER_CREATED", T0, "d1", with_shipment=shipment("express")),
        scan("HUB_RECEIVED", T0 + HOUR, "d2"),
        scan("LASTMILE_HANDOVER", T0 + 4 * HOUR, "d3"),
        scan("DELIVERED", T0 + 10 * HOUR, "d4"),
    ]
    for offset, record in enumerate(journey + journey):  # the second pass only replays
        tables.run(processor, scan_message(record, offset))

    assert sample("parcelstream_stage_dwell_seconds_count", labels) == dwell_before + 1
    assert sample("parcelstream_transit_seconds_sum", transit_labels) == transit_before + 10 * 3600
    stored = orjson.loads(tables.parcels["LP00123456789CN"])
    assert stored["stages"] == [None, None, T0 + 10 * HOUR, True]
