"""The worker's message handling without Kafka: decoding, routing, outputs and dead letters."""

from __future__ import annotations

import logging
import struct
from typing import Any

import pytest
from prometheus_client import REGISTRY

from schemas.codec import default_codec
from schemas.topics import TopicNames
from streams.core.clock import EventClock
from streams.core.rules import SlaRules
from streams.settings import WorkerSettings
from streams.worker.estimates import PartitionEstimates
from streams.worker.processor import (
    MAX_VALUE_BYTES,
    Output,
    Processor,
    Result,
    SourceMessage,
    outbox_values,
    read_outbox,
)
from streams.worker.serde import decode_parcel
from tests.streams.builders import DAY, HOUR, T0, manifest, scan, shipment

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
        self.outbox: dict[str, bytes] = {}

    def run(self, processor: Processor, source: SourceMessage, wall_ms: int = T0) -> Result:
        result = processor.handle(source, self.parcels, self.units, wall_ms)
        result.write_state(self.parcels, self.units, self.outbox)
        return result


def test_a_parcel_scan_publishes_state_and_status_update_and_stores_the_parcel() -> None:
    processor, tables = make_processor(), Tables()
    result = tables.run(processor, scan_message(scan("ORDER_CREATED", T0, "e1", with_shipment=shipment())))

    states = decoded(result.outputs, TOPICS.parcel_state)
    updates = decoded(result.outputs, TOPICS.status_updates)
    assert [state["status"] for state in states] == ["InfoReceived"]
    assert [update["status"] for update in updates] == ["InfoReceived"]
    assert all(output.key == b"LP00123456789CN" for output in result.outputs)
    stored = processor.stored_record(tables.parcels["LP00123456789CN"])
    assert stored["history"][0]["event_id"] == "e1"
    assert result.deadline is not None and result.deadline[1] is not None


def test_the_same_scan_again_publishes_nothing_and_the_outbox_keeps_what_the_first_published() -> None:
    processor, tables = make_processor(), Tables()
    record = scan("ORIGIN_RECEIVED", T0, "e1")
    first = tables.run(processor, scan_message(record, offset=0))
    kept = read_outbox(tables.outbox, "0")
    second = processor.handle(scan_message(record, offset=1), tables.parcels, tables.units, T0 + 10**9)
    assert first.outputs and second.outputs == [] and second.parcel_state is None
    # A restarted worker publishes the outbox again: the update as it was, the state as it is now.
    (update,) = [o for o in first.outputs if o.topic == TOPICS.status_updates]
    assert kept == [(TOPICS.status_updates, update.key, update.value), (TOPICS.parcel_state, update.key, b"")]


def test_an_outbox_larger_than_a_record_is_split_and_read_back_whole() -> None:
    outputs = [("t", f"k{n}".encode(), bytes(4000)) for n in range(600)]  # 2.4 MB
    values = dict(outbox_values("3", outputs))
    assert set(values) == {"3", "3.1", "3.2"}
    assert all(len(value) <= MAX_VALUE_BYTES for value in values.values())
    assert read_outbox(values, "3") == outputs
    assert read_outbox(values, "4") == []


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
    # A replayed tick publishes and counts nothing (the outbox re-sends it after a crash).
    again = processor.handle_sla_due(tracking_number, tables.parcels, 0, str(deadline))
    assert decoded(again.outputs, TOPICS.sla_events) == []
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


def test_an_sla_change_fired_by_the_timer_publishes_a_newer_version_and_keeps_its_events_in_the_outbox() -> None:
    processor, tables = make_processor(speed=1.0), Tables()
    result = tables.run(processor, scan_message(scan("LINEHAUL_DEPARTED", T0, "e1")), wall_ms=0)
    (scanned,) = decoded(result.outputs, TOPICS.parcel_state)
    tracking_number, deadline = result.deadline
    tick = str(deadline + HOUR)  # the timer's clock when it sent the parcel to sla-due
    due = processor.handle_sla_due(tracking_number, tables.parcels, 0, tick)
    events = decoded(due.outputs, TOPICS.sla_events)
    assert events and {event["observed_ms"] for event in events} == {deadline + HOUR}
    (state,) = decoded(due.outputs, TOPICS.parcel_state)
    assert state["version"] == scanned["version"] + 1 and state["open_sla"] == ["silence:at_risk"]
    outbox: dict[str, bytes] = {}
    due.write_state(tables.parcels, tables.units, outbox)
    assert [(t, v) for t, _k, v in read_outbox(outbox, "None") if t == TOPICS.sla_events] == [
        (o.topic, o.value) for o in due.outputs if o.topic == TOPICS.sla_events
    ]
    # The replayed tick, even on a later clock, changes and publishes nothing.
    again = processor.handle_sla_due(tracking_number, tables.parcels, 10**9, tick)
    assert again.outputs == [] and again.parcel_state is None
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
    stored = decode_parcel(tables.parcels["LP00123456789CN"], processor.entries)
    assert stored.stages.to_list() == [None, None, T0 + 10 * HOUR, True]


def test_scans_past_the_bounds_of_a_parcel_or_a_unit_are_dead_lettered_and_the_rest_goes_on() -> None:
    processor = Processor(TOPICS, SlaRules(), EventClock(1.0), max_scans=3, max_unit_members=2)
    tables = Tables()
    for n in range(3):
        tables.run(processor, scan_message(scan("HUB_SORTED", T0 + n * HOUR, f"e{n}"), offset=n))
    refused = tables.run(processor, scan_message(scan("HUB_DEPARTED", T0 + 5 * HOUR, "e5"), offset=3))
    [dead_letter] = decoded(refused.outputs, TOPICS.dead_letters)
    assert dead_letter["reason_code"] == "too_many_scans" and refused.parcel_state is None
    assert len(processor.stored_record(tables.parcels["LP00123456789CN"])["history"]) == 3

    big = manifest("m1", "BAG-9", ["LP000000001CN", "LP000000002CN", "LP000000003CN"])
    refused = tables.run(processor, message(CODEC.encode("Manifest", big), b"BAG-9", TOPICS.manifests, 4))
    [dead_letter] = decoded(refused.outputs, TOPICS.dead_letters)
    assert dead_letter["reason_code"] == "unit_too_large" and "BAG-9" not in tables.units


def test_a_unit_whose_stored_value_would_pass_a_broker_record_is_refused() -> None:
    processor, tables = make_processor(), Tables()
    long_reason = "x" * 12_000
    outcomes = []
    for n in range(120):  # 120 kept scans of 12 kB: over the record limit
        unit_scan = dict(scan("HUB_SORTED", T0 + n, f"u{n}", tracking_number=None, handling_unit="ULD-1"))
        unit_scan["reason"] = long_reason
        outcomes.append(tables.run(processor, scan_message(unit_scan, offset=n)))
    codes = [d["reason_code"] for result in outcomes for d in decoded(result.outputs, TOPICS.dead_letters)]
    assert codes and set(codes) == {"unit_too_large"}
    assert all(len(value) <= MAX_VALUE_BYTES for value in tables.units.values())


def test_a_closed_parcel_is_archived_with_a_state_tombstone_then_deleted_from_its_table() -> None:
    processor, tables = make_processor(), Tables()
    number = "LP00123456789CN"
    for offset, code in enumerate(("OUT_FOR_DELIVERY", "DELIVERED")):
        result = tables.run(processor, scan_message(scan(code, T0 + offset * HOUR, f"e{offset}"), offset=offset))
    archive_at = result.deadline[1]
    assert archive_at == T0 + HOUR + 30 * 24 * HOUR

    archived = processor.handle_sla_due(number, tables.parcels, 0, str(archive_at))
    archived.write_state(tables.parcels, tables.units, tables.outbox)
    assert [(o.topic, o.key, o.value) for o in archived.outputs] == [(TOPICS.parcel_state, number.encode(), None)]
    assert (TOPICS.parcel_state, number.encode(), None) in read_outbox(tables.outbox, "None")
    assert len(tables.parcels[number]) < 100  # the marker
    late = tables.run(processor, scan_message(scan("HUB_SORTED", archive_at + HOUR, "late"), offset=5))
    [dead_letter] = decoded(late.outputs, TOPICS.dead_letters)
    assert dead_letter["reason_code"] == "parcel_archived"

    gone_at = archived.deadline[1]
    gone = processor.handle_sla_due(number, tables.parcels, 0, str(gone_at))
    assert [(o.topic, o.value) for o in gone.outputs] == [(TOPICS.parcel_state, None)]
    assert gone.deadline == (number, None)
    batch = processor.batch(tables.parcels, tables.units)
    batch.add_sla_due(number, 0, None, str(gone_at))
    batch.write_state(tables.parcels, tables.units)
    assert number not in tables.parcels


def test_a_unit_is_deleted_when_its_retention_ends_unless_a_later_scan_moved_it() -> None:
    processor, tables = make_processor(), Tables()
    first = tables.run(
        processor, scan_message(scan("LINEHAUL_DEPARTED", T0, "u1", tracking_number=None, handling_unit="AKE1"))
    )
    timer_key, due = first.deadline
    assert timer_key == "unit:AKE1" and due == T0 + 7 * 24 * HOUR
    tables.run(
        processor,
        scan_message(scan("LINEHAUL_ARRIVED", T0 + DAY, "u2", tracking_number=None, handling_unit="AKE1"), offset=1),
    )
    batch = processor.batch(tables.parcels, tables.units)
    batch.add_sla_due("AKE1", 0, None, f"unit:{due}")  # the old timer: not yet
    assert batch.deadlines() == [("unit:AKE1", T0 + DAY + 7 * 24 * HOUR)]
    batch.write_state(tables.parcels, tables.units)
    assert "AKE1" in tables.units
    batch = processor.batch(tables.parcels, tables.units)
    batch.add_sla_due("AKE1", 0, None, f"unit:{T0 + 8 * DAY}")
    assert batch.deadlines() == [("unit:AKE1", None)]
    batch.write_state(tables.parcels, tables.units)
    assert "AKE1" not in tables.units


def command_message(tracking_number: str, offset: int = 0, command_id: str = "c1") -> SourceMessage:
    command = {
        "command_id": command_id,
        "tracking_number": tracking_number,
        "action": "erase",
        "reason": "ticket GDPR-1",
        "requested_time_ms": T0,
    }
    return message(CODEC.encode("ParcelCommand", command), tracking_number.encode(), TOPICS.parcel_commands, offset)


def test_an_erase_command_removes_the_parcel_publishes_a_tombstone_and_refuses_its_late_scans(
    caplog: pytest.LogCaptureFixture,
) -> None:
    processor, tables = make_processor(), Tables()
    number = "LP00123456789CN"
    tables.run(processor, scan_message(scan("ORDER_CREATED", T0, "e1", with_shipment=shipment())))
    with caplog.at_level(logging.INFO, logger="parcelstream.audit"):
        erased = tables.run(processor, command_message(number, offset=1))
    assert [(o.topic, o.key, o.value) for o in erased.outputs] == [(TOPICS.parcel_state, number.encode(), None)]
    assert number not in tables.parcels and (TOPICS.parcel_state, number.encode(), None) in read_outbox(
        tables.outbox, "0"
    )
    assert not any(number in key or number.encode() in value for key, value in tables.parcels.items())
    (line,) = [r.getMessage() for r in caplog.records if r.name == "parcelstream.audit"]
    assert "erased parcel erased:" in line and number not in line and "GDPR-1" in line

    late = tables.run(processor, scan_message(scan("HUB_SORTED", T0 + HOUR, "e2"), offset=2))
    [dead_letter] = decoded(late.outputs, TOPICS.dead_letters)
    assert dead_letter["reason_code"] == "parcel_erased" and number not in tables.parcels
    # Erasing again (a replayed command, or an absent parcel) publishes the tombstone again.
    again = tables.run(processor, command_message(number, offset=3))
    assert [(o.topic, o.value) for o in again.outputs] == [(TOPICS.parcel_state, None)]

    # The marker goes after PARCELSTREAM_EXPIRE_DAYS (its timer names its partition, not the number).
    batch = processor.batch(tables.parcels, tables.units)
    batch.add(command_message(number, offset=4), T0)
    deadlines = dict(batch.deadlines())
    assert deadlines[number] is None
    ((timer_key, due),) = [(key, due) for key, due in deadlines.items() if key.startswith("erased:0:")]
    assert T0 + 60 * DAY <= due < T0 + 61 * DAY  # erased at the clock's now
    marker_key = "erased:" + timer_key.split(":", 2)[2]
    gone = processor.handle_sla_due(marker_key, tables.parcels, 0, str(due))
    assert gone.outputs == []
    batch = processor.batch(tables.parcels, tables.units)
    batch.add_sla_due(marker_key, 0, 0, str(due))
    batch.write_state(tables.parcels, tables.units)
    assert tables.parcels == {} and batch.deadlines() == [(timer_key, None)]


def test_a_processor_from_settings_takes_the_workers_limits_and_the_learners_it_is_given() -> None:
    settings = WorkerSettings(topic_prefix="t-from-settings", max_scans_per_parcel=7, max_unit_members=3)
    learners = PartitionEstimates(settings.estimate_config())

    processor = Processor.from_settings(settings, estimates=learners)

    assert processor.topics == settings.topics
    assert processor.estimates is learners  # the worker restores these after an assignment
    assert (processor.max_scans, processor.max_unit_members) == (7, 3)
    assert processor.retention == settings.retention()
    assert processor.guards.max_fanout_depth == settings.max_fanout_depth
    # Without learners it makes its own, and other topics when asked.
    alone = Processor.from_settings(settings, TOPICS)
    assert alone.topics == TOPICS and alone.estimates is not None and alone.estimates is not learners
