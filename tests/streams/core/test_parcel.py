from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.codec import default_codec
from streams.core.apply import Outcome, apply_scan, apply_sla_due
from streams.core.estimates import DeliveryEstimates, EstimateConfig
from streams.core.parcel import History, Parcel, update_id
from streams.core.rules import SlaRules
from streams.core.stages import StageProgress
from streams.core.taxonomy import InvalidScanError, UnknownScanCode
from streams.worker.serde import AvroEntryCodec
from tests.streams.builders import DAY, HOUR, T0, TN, location, scan, shipment

RULES = SlaRules()
LGG = location("LGG", country="BE")
HGH = location("HGH", country="CN")


def run(*scans: dict[str, Any], parcel: Parcel | None = None) -> tuple[Parcel, list[Outcome]]:
    outcomes = []
    for event in scans:
        outcome = apply_scan(parcel, event, RULES, event["event_time_ms"])
        parcel = outcome.parcel
        outcomes.append(outcome)
    assert parcel is not None
    return parcel, outcomes


def statuses(outcomes: list[Outcome]) -> list[tuple[str, str]]:
    return [(u["status"], u["sub_status"]) for o in outcomes for u in o.status_updates]


def test_first_scan_creates_the_parcel_and_its_records_fit_the_schemas() -> None:
    parcel, (outcome,) = run(scan("ORDER_CREATED", T0, with_shipment=shipment()))
    assert outcome.changed and not outcome.duplicate
    codec = default_codec()
    assert codec.validate("ParcelState", parcel.to_record()) == []
    assert [codec.validate("StatusUpdate", u) for u in outcome.status_updates] == [[]]
    record = parcel.to_record()
    assert (record["status"], record["sub_status"], record["version"]) == ("InfoReceived", "order_created", 1)
    assert (record["service_level"], record["merchant"], record["destination_postcode"]) == (
        "standard",
        "shop-1",
        "4000",
    )


def test_history_is_in_event_time_order_whatever_the_arrival_order_ties_by_event_id() -> None:
    parcel, _ = run(
        scan("HUB_SORTED", T0 + 3 * HOUR, "c"),
        scan("ORIGIN_RECEIVED", T0 + HOUR, "a"),
        scan("HUB_RECEIVED", T0 + 2 * HOUR, "b2"),
        scan("HUB_MISSORTED", T0 + 2 * HOUR, "b1"),
    )
    assert [h["event_id"] for h in parcel.to_record()["history"]] == ["a", "b1", "b2", "c"]


def test_the_same_event_id_twice_changes_nothing_and_publishes_nothing() -> None:
    first = scan("HUB_RECEIVED", T0, "e1", where=LGG)
    parcel, (applied,) = run(first)
    assert applied.status_updates
    before = parcel.to_dict()
    again = dict(first, code="HUB_SORTED", event_time_ms=T0 + HOUR)  # a replay, even with other content
    outcome = apply_scan(parcel, again, RULES, T0 + HOUR)
    assert outcome.duplicate and not outcome.changed
    assert outcome.status_updates == [] and outcome.sla_events == []
    assert parcel.to_dict() == before


def test_an_event_id_that_only_appears_inside_another_entry_is_not_a_duplicate() -> None:
    parcel, _ = run(dict(scan("HUB_RECEIVED", T0, "e1"), reason="see e2"))
    outcome = apply_scan(parcel, dict(scan("HUB_SORTED", T0 + HOUR, "e2")), RULES, T0 + HOUR)
    assert outcome.changed and not outcome.duplicate


def test_a_late_older_event_fills_history_but_never_moves_the_status_backwards() -> None:
    parcel, _ = run(scan("OUT_FOR_DELIVERY", T0 + 5 * HOUR, where=location("4000", "address_area")))
    outcome = apply_scan(parcel, scan("IMPORT_CUSTOMS_HELD", T0 + HOUR, where=LGG), RULES, T0 + 5 * HOUR)
    record = parcel.to_record()
    assert outcome.changed
    assert (record["status"], record["sub_status"]) == ("OutForDelivery", "out_for_delivery")
    assert record["version"] == 2
    assert [h["code"] for h in record["history"]] == ["IMPORT_CUSTOMS_HELD", "OUT_FOR_DELIVERY"]
    assert record["last_location"]["code"] == "4000"
    assert record["last_event_time_ms"] == T0 + 5 * HOUR


def test_an_informational_scan_enters_the_history_and_keeps_the_status() -> None:
    # An airline's DLV (delivered to the AWB's consignee) after customs hold: no change of status.
    parcel, outcomes = run(
        scan("IMPORT_CUSTOMS_HELD", T0 + HOUR, where=LGG), scan("CARRIER_INFORMATION", T0 + 2 * HOUR, where=LGG)
    )
    record = parcel.to_record()
    assert (record["status"], record["sub_status"]) == ("CustomsHold", "held_import")
    assert [h["code"] for h in record["history"]] == ["IMPORT_CUSTOMS_HELD", "CARRIER_INFORMATION"]
    assert outcomes[1].status_updates == []


def test_delivered_holds_against_a_later_stamped_upstream_scan() -> None:
    parcel, outcomes = run(
        scan("OUT_FOR_DELIVERY", T0),
        scan("DELIVERED", T0 + HOUR, where=location("4000", "address_area")),
        scan("HUB_SORTED", T0 + 2 * HOUR, where=LGG),  # a device with a wrong clock
    )
    record = parcel.to_record()
    assert record["status"] == "Delivered"
    assert record["last_location"]["code"] == "4000"
    assert record["last_event_id"] == record["history"][-1]["event_id"]
    assert outcomes[-1].status_updates == []


def test_delivered_is_reopened_by_a_later_delivery_step() -> None:
    parcel, outcomes = run(scan("DELIVERED", T0), scan("DELIVERY_ATTEMPT_FAILED", T0 + HOUR))
    assert parcel.status == "AttemptFail"
    assert statuses(outcomes)[-1] == ("AttemptFail", "attempt_failed")


def test_a_late_delivered_scan_takes_over_from_later_stamped_upstream_scans() -> None:
    parcel, outcomes = run(scan("HUB_SORTED", T0 + 2 * HOUR), scan("DELIVERED", T0 + HOUR))
    assert parcel.status == "Delivered"
    assert ("Delivered", "delivered") in statuses(outcomes)


def test_returned_is_final() -> None:
    parcel, _ = run(scan("RETURNED", T0), scan("OUT_FOR_DELIVERY", T0 + HOUR), scan("DELIVERED", T0 + 2 * HOUR))
    assert (parcel.status, parcel.sub_status) == ("Exception", "returned_to_sender")
    assert parcel.to_record()["estimated_delivery"] is None


def test_lost_parcel_that_scans_again_is_found() -> None:
    parcel, _ = run(scan("LOST", T0), scan("HUB_RECEIVED", T0 + HOUR))
    assert (parcel.status, parcel.sub_status) == ("InTransit", "received_at_hub")


def test_last_known_location_skips_scans_without_location() -> None:
    parcel, _ = run(scan("LINEHAUL_ARRIVED", T0, where=LGG), scan("IMPORT_CUSTOMS_PRESENTED", T0 + HOUR))
    assert parcel.to_record()["last_location"] == LGG


@pytest.mark.parametrize(("service_level", "days"), [("standard", 10), ("express", 5), ("economy", 20)])
def test_promise_follows_the_service_level(service_level: str, days: int) -> None:
    parcel, _ = run(scan("ORDER_CREATED", T0, with_shipment=shipment(service_level, ordered_ms=T0)))
    estimate = parcel.to_record()["estimated_delivery"]
    assert estimate["promised_ms"] == T0 + days * DAY
    assert T0 < estimate["earliest_ms"] <= estimate["latest_ms"] <= estimate["promised_ms"]


def test_estimate_moves_when_the_parcel_is_delayed() -> None:
    order = scan("ORDER_CREATED", T0, with_shipment=shipment())
    on_time, _ = run(order, scan("LINEHAUL_DEPARTED", T0 + DAY, "dep"))
    late, _ = run(order, scan("LINEHAUL_DEPARTED", T0 + 6 * DAY, "dep"))
    on_time_estimate = on_time.to_record()["estimated_delivery"]
    late_estimate = late.to_record()["estimated_delivery"]
    assert late_estimate["latest_ms"] > on_time_estimate["latest_ms"]
    assert late_estimate["earliest_ms"] > on_time_estimate["earliest_ms"]
    assert on_time.to_record()["on_time"] is True
    assert late.to_record()["on_time"] is False
    # further on, the window narrows
    nearer, _ = run(order, scan("OUT_FOR_DELIVERY", T0 + 3 * DAY))
    window = nearer.to_record()["estimated_delivery"]
    assert window["latest_ms"] - window["earliest_ms"] < on_time_estimate["latest_ms"] - on_time_estimate["earliest_ms"]


def test_delivered_parcel_estimate_is_its_delivery_time() -> None:
    parcel, _ = run(scan("ORDER_CREATED", T0, with_shipment=shipment("express")), scan("DELIVERED", T0 + 6 * DAY))
    record = parcel.to_record()
    assert record["estimated_delivery"] == {
        "earliest_ms": T0 + 6 * DAY,
        "latest_ms": T0 + 6 * DAY,
        "promised_ms": T0 + 5 * DAY,
    }
    assert record["on_time"] is False


def test_status_updates_only_for_customer_visible_changes() -> None:
    _, outcomes = run(
        scan("HUB_RECEIVED", T0, "a"),
        scan("HUB_RECEIVED", T0 + HOUR, "b"),  # same status and sub-status: nothing to tell
        scan("HUB_SORTED", T0 + 2 * HOUR, "c"),
        scan("HUB_SORTED", T0 + 2 * HOUR, "c"),  # duplicate
        scan("OUT_FOR_DELIVERY", T0 + 3 * HOUR, "d"),
    )
    updates = [u for o in outcomes if not o.duplicate for u in o.status_updates]
    assert [(u["sub_status"], u["event_id"]) for u in updates] == [
        ("received_at_hub", "a"),
        ("sorted_at_hub", "c"),
        ("out_for_delivery", "d"),
    ]
    assert [u["sequence"] for u in updates] == [1, 2, 3]
    assert [u["previous_status"] for u in updates] == [None, "InTransit", "InTransit"]


def test_update_ids_are_stable_and_count_repeated_statuses() -> None:
    journey = [
        scan("OUT_FOR_DELIVERY", T0, "ofd1"),
        scan("DELIVERY_ATTEMPT_FAILED", T0 + HOUR, "af"),
        scan("OUT_FOR_DELIVERY", T0 + DAY, "ofd2"),
    ]
    _, first = run(*journey)
    _, replay = run(*journey)
    ids = [u["update_id"] for o in first for u in o.status_updates]
    assert ids == [u["update_id"] for o in replay for u in o.status_updates]
    assert len(set(ids)) == 3
    assert ids[2] == update_id(TN, "OutForDelivery", "out_for_delivery", 2)


def test_a_late_event_that_adds_a_past_status_is_published_with_its_own_time() -> None:
    parcel, _ = run(scan("HUB_SORTED", T0 + 2 * HOUR, "late-arrival-first"))
    outcome = apply_scan(parcel, scan("IMPORT_CUSTOMS_HELD", T0 + HOUR, "held"), RULES, T0 + 2 * HOUR)
    (update,) = outcome.status_updates
    assert (update["status"], update["event_id"], update["event_time_ms"]) == ("CustomsHold", "held", T0 + HOUR)
    assert update["sequence"] == 2
    assert parcel.status == "InTransit"


def test_scans_before_the_order_data_work_and_the_late_order_fills_it_in() -> None:
    parcel, _ = run(scan("LINEHAUL_DEPARTED", T0 + DAY, where=HGH))
    record = parcel.to_record()
    assert record["service_level"] is None and record["merchant"] is None
    assert record["estimated_delivery"]["promised_ms"] is None
    outcome = apply_scan(parcel, scan("ORDER_CREATED", T0, with_shipment=shipment("express")), RULES, T0 + DAY)
    record = parcel.to_record()
    assert record["status"] == "InTransit"
    assert record["service_level"] == "express"
    assert record["estimated_delivery"]["promised_ms"] == T0 + 5 * DAY
    assert record["route"] == "HGH-BE"
    assert [u["status"] for u in outcome.status_updates] == ["InfoReceived"]


def test_route_is_origin_arrival_destination() -> None:
    parcel, _ = run(
        scan("ORDER_CREATED", T0, with_shipment=shipment()),
        scan("LINEHAUL_DEPARTED", T0 + DAY, where=HGH),
        scan("LINEHAUL_ARRIVED", T0 + 2 * DAY, where=LGG),
    )
    assert parcel.route == "HGH-LGG-BE"


@pytest.mark.parametrize(
    ("change", "reason_code"),
    [
        ({"code": "NOT_A_CODE"}, "unknown_code"),
        ({"tracking_number": None}, "missing_tracking_number"),
        ({"tracking_number": "OTHER"}, "wrong_parcel"),
        ({"event_id": ""}, "malformed_record"),
    ],
)
def test_invalid_scans_are_refused_and_leave_the_parcel_unchanged(change: dict[str, Any], reason_code: str) -> None:
    parcel, _ = run(scan("HUB_RECEIVED", T0))
    before = parcel.to_dict()
    with pytest.raises(InvalidScanError) as error:
        apply_scan(parcel, dict(scan("HUB_SORTED", T0 + HOUR), **change), RULES, T0 + HOUR)
    assert error.value.reason_code == reason_code
    assert parcel.to_dict() == before


def test_unknown_code_raises_unknown_scan_code() -> None:
    with pytest.raises(UnknownScanCode):
        apply_scan(None, scan("BOGUS", T0), RULES, T0)


def restore(parcel: Parcel) -> Parcel:
    """The parcel as stored and read back: JSON fields, history bytes."""
    history = History(parcel.history.codec, bytes(parcel.history.blob), list(parcel.history.sizes))
    return Parcel.from_dict(json.loads(json.dumps(parcel.to_dict())), history)


def test_stored_fields_round_trip_through_json_and_processing_continues_the_same() -> None:
    journey = [
        scan("ORDER_CREATED", T0, with_shipment=shipment()),
        scan("LINEHAUL_ARRIVED", T0 + 3 * DAY, where=LGG),
        scan("IMPORT_CUSTOMS_HELD", T0 + 3 * DAY + HOUR),
    ]
    parcel, _ = run(*journey)
    restored = restore(parcel)
    assert restored == parcel
    assert restored.to_record() == parcel.to_record()
    late = scan("LINEHAUL_DEPARTED", T0 + DAY, where=HGH)
    direct = apply_scan(parcel, late, RULES, T0 + 5 * DAY)
    via_table = apply_scan(restored, late, RULES, T0 + 5 * DAY)
    assert via_table.status_updates == direct.status_updates
    assert via_table.sla_events == direct.sla_events
    assert restored.to_record() == parcel.to_record()
    assert apply_scan(restored, late, RULES, T0 + 5 * DAY).duplicate


def test_history_entries_are_encoded_once_and_appended() -> None:
    encoded: list[str] = []

    class CountingCodec(type(History().codec)):  # type: ignore[misc]
        def encode(self, entry: dict[str, Any]) -> bytes:
            encoded.append(entry["event_id"])
            return super().encode(entry)

    parcel = None
    for n in range(30):
        parcel = apply_scan(parcel, scan("HUB_SORTED", T0 + n * HOUR, f"e{n}"), RULES, T0, codec=CountingCodec()).parcel
    assert encoded == [f"e{n}" for n in range(30)]  # never an old entry again
    assert parcel is not None and parcel.history.memo is None
    parcel.history.memo, parcel.history.memo_entries = "kept prefix", 31
    apply_scan(parcel, scan("HUB_SORTED", T0 + 40 * HOUR, "e40"), RULES, T0)
    assert (parcel.history.memo, parcel.history.memo_entries) == ("kept prefix", 31)  # appending keeps it all
    apply_scan(parcel, scan("HUB_SORTED", T0 + 29 * HOUR + 1, "late29"), RULES, T0)
    assert parcel.history.memo_entries == 30  # an insertion: the entries before it only
    apply_scan(parcel, scan("HUB_SORTED", T0 + HOUR // 2, "late"), RULES, T0)
    assert parcel.history.memo_entries == 1
    assert [h["event_id"] for h in parcel.to_record()["history"]][:3] == ["e0", "late", "e1"]


def test_stored_fields_hold_no_history_and_only_the_codes_the_rules_read() -> None:
    parcel, _ = run(
        scan("ORDER_CREATED", T0, with_shipment=shipment()),
        scan("ORIGIN_RECEIVED", T0 + HOUR, where=HGH),
        scan("LINEHAUL_DEPARTED", T0 + DAY, where=HGH),
        scan("LINEHAUL_ARRIVED", T0 + 2 * DAY, where=LGG),
        scan("HUB_SORTED", T0 + 3 * DAY, where=LGG),
    )
    stored = parcel.to_dict()
    assert "history" not in stored
    assert set(stored["first"]) == {"LINEHAUL_ARRIVED"}
    assert set(stored["route"]) == {"LINEHAUL_DEPARTED", "LINEHAUL_ARRIVED"}
    assert len(json.dumps(stored, separators=(",", ":"))) < 1200  # 45-character test event ids


def test_version_counts_every_stored_change_sla_changes_included() -> None:
    parcel, _ = run(scan("ORDER_CREATED", T0, with_shipment=shipment()), scan("HUB_SORTED", T0 + HOUR))
    assert parcel.version == 2
    early = apply_sla_due(parcel, RULES, T0 + 2 * HOUR)
    assert not early.changed and early.sla_events == [] and parcel.version == 2
    first = apply_sla_due(parcel, RULES, T0 + 90 * HOUR)
    assert first.changed and not first.duplicate
    assert {(e["rule"], e["kind"]) for e in first.sla_events} >= {("silence", "breach")}
    assert parcel.version == 3 and parcel.to_record()["version"] == 3
    before = parcel.to_dict()
    # The same tick again, even evaluated later: nothing new, nothing changed.
    again = apply_sla_due(parcel, RULES, T0 + 90 * HOUR)
    assert not again.changed and again.sla_events == [] and again.status_updates == []
    assert parcel.to_dict() == before
    assert apply_scan(parcel, scan("HUB_SORTED", T0 + HOUR), RULES, T0).duplicate and parcel.version == 3


def test_past_the_most_scans_a_parcel_keeps_a_scan_is_refused_and_the_parcel_keeps_working() -> None:
    parcel = None
    for n in range(5):
        parcel = apply_scan(parcel, scan("HUB_SORTED", T0 + n * HOUR, f"e{n}"), RULES, T0, max_scans=5).parcel
    assert parcel is not None
    before = parcel.to_dict()
    with pytest.raises(InvalidScanError) as error:
        apply_scan(parcel, scan("DELIVERED", T0 + DAY, "late"), RULES, T0, max_scans=5)
    assert error.value.reason_code == "too_many_scans"
    assert parcel.to_dict() == before and len(parcel.history) == 5
    assert apply_scan(parcel, scan("HUB_SORTED", T0, "e0"), RULES, T0, max_scans=5).duplicate
    assert apply_sla_due(parcel, RULES, T0 + 90 * DAY).changed  # its SLA rules still run


def test_a_copy_is_equal_and_independent_of_the_original() -> None:
    journey = [
        scan("ORDER_CREATED", T0, with_shipment=shipment()),
        scan("LINEHAUL_DEPARTED", T0 + DAY, where=HGH),
        scan("LINEHAUL_ARRIVED", T0 + 3 * DAY, where=LGG),
    ]
    parcel, _ = run(*journey)
    stored, record = json.dumps(parcel.to_dict()), parcel.to_record()
    copy = parcel.copy()
    assert copy == parcel and copy.to_record() == record
    # Every kind of change the core makes in place, on the copy: new runs, milestones and route
    # points, the stages, the last mile, a late entry, SLA events and open rules days later.
    run(
        scan("LINEHAUL_UNLOADED", T0 + 3 * DAY + HOUR, where=LGG),
        scan("IMPORT_CUSTOMS_CLEARED", T0 + 4 * DAY),
        scan("LASTMILE_HANDOVER", T0 + 9 * DAY),
        scan("ORIGIN_RECEIVED", T0 + HOUR, where=location("CN-HGH-WH1", "facility", "CN")),
        parcel=copy,
    )
    assert apply_sla_due(copy, RULES, T0 + 30 * DAY).sla_events
    assert json.dumps(parcel.to_dict()) == stored and parcel.to_record() == record


def test_a_copy_keeps_every_field_of_the_parcel() -> None:
    """``Parcel.copy`` names the fields one by one: a field added later must be copied too."""
    parcel, _ = run(scan("ORDER_CREATED", T0, with_shipment=shipment()))
    containers = {"first_seen": {"x": 1}, "route_points": {"y": 2}, "run_counts": {"z": 3}, "sla_open": {"w": 4}}
    for name in {field.name for field in dataclasses.fields(Parcel)} - {"history", "stages", *containers}:
        setattr(parcel, name, object())  # a value no default equals
    for name, value in containers.items():
        setattr(parcel, name, value)
    parcel.sla_emitted = {"v"}
    parcel.stages = StageProgress("hub", T0, T0, True)
    assert parcel.copy() == parcel


CODES = [
    "ORDER_CREATED",
    "ORIGIN_RECEIVED",
    "LINEHAUL_DEPARTED",
    "LINEHAUL_ARRIVED",
    "LINEHAUL_UNLOADED",
    "IMPORT_CUSTOMS_HELD",
    "IMPORT_CUSTOMS_CLEARED",
    "HUB_SORTED",
    "LASTMILE_HANDOVER",
    "OUT_FOR_DELIVERY",
    "DELIVERY_ATTEMPT_FAILED",
    "DELIVERED",
    "RETURNED",
]


@st.composite
def arrivals(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Scans of one parcel in any arrival order: late ones, ties in event time, duplicates."""
    count = draw(st.integers(1, 14))
    events = []
    for n in range(count):
        code = draw(st.sampled_from(CODES))
        time_ms = T0 + draw(st.integers(0, 12)) * HOUR
        where = draw(st.sampled_from([HGH, LGG, None]))
        events.append(scan(code, time_ms, f"e{n}", where=where, with_shipment=shipment() if n == 0 else None))
    events += draw(st.lists(st.sampled_from(events), max_size=3))
    return draw(st.permutations(events))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=arrivals(), avro=st.booleans())
def test_a_parcel_kept_decoded_folds_every_scan_as_one_read_back_from_its_bytes(
    events: list[dict[str, Any]], avro: bool
) -> None:
    """The live parcel keeps its decoded entries from scan to scan (``History.decoded``, stepped by
    appends and inserts); the reference reads every scan's parcel back from its stored bytes, so it
    decodes them afresh: same outcomes, same parcel."""
    codec = AvroEntryCodec(default_codec()) if avro else History().codec
    kept_learner, read_learner = DeliveryEstimates(EstimateConfig()), DeliveryEstimates(EstimateConfig())
    kept: Parcel | None = None
    read: Parcel | None = None
    for event in events:
        try:
            kept_outcome = apply_scan(kept, dict(event), RULES, T0 + DAY, kept_learner, codec=codec)
        except InvalidScanError as error:
            with pytest.raises(InvalidScanError, match=error.reason_code):
                apply_scan(restore(read) if read else None, dict(event), RULES, T0 + DAY, read_learner, codec=codec)
            continue
        reread = restore(read) if read else None
        read_outcome = apply_scan(reread, dict(event), RULES, T0 + DAY, read_learner, codec=codec)
        kept, read = kept_outcome.parcel, read_outcome.parcel
        assert kept_outcome.status_updates == read_outcome.status_updates
        assert kept_outcome.sla_events == read_outcome.sla_events
        assert kept == read and kept.to_record() == read.to_record()
        assert kept.history.entries() == read.history.copy().entries() == restore(read).history.entries()
    assert kept_learner == read_learner


def test_late_scans_in_a_row_decode_the_history_once() -> None:
    decoded: list[int] = []

    class CountingCodec(type(History().codec)):  # type: ignore[misc]
        def decode(self, blob: bytes, sizes: list[int]) -> list[dict[str, Any]]:
            decoded.append(len(sizes))
            return super().decode(blob, sizes)

    codec = CountingCodec()
    parcel = None
    for n in range(10):
        parcel = apply_scan(parcel, scan("HUB_SORTED", T0 + 10 * HOUR + n, f"e{n}"), RULES, T0, codec=codec).parcel
    for n in range(3):
        parcel = apply_scan(parcel, scan("ORIGIN_RECEIVED", T0 + n * HOUR, f"late{n}"), RULES, T0, codec=codec).parcel
        parcel = apply_scan(parcel, scan("HUB_SORTED", T0 + 20 * HOUR + n, f"new{n}"), RULES, T0, codec=codec).parcel
    assert decoded == [10]  # once, then stepped by every insert and append
    assert parcel is not None
    assert [entry["event_id"] for entry in parcel.history.entries()][:4] == ["late0", "late1", "late2", "e0"]
    parcel.history.forget()
    assert len(parcel.history.entries()) == 16 and decoded == [10, 16]
