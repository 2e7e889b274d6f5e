"""A parcel's life in event time: open → closed → archived (a marker refusing late scans) → gone;
an open parcel silent too long expires; a unit is forgotten after its retention."""

from __future__ import annotations

import pytest

from streams.core.apply import apply_due, apply_scan, due_ms
from streams.core.consolidation import apply_manifest, apply_unit_scan, unit_due_ms
from streams.core.parcel import Parcel
from streams.core.rules import Retention, SlaRules
from streams.core.taxonomy import InvalidScanError
from tests.streams.builders import DAY, HOUR, T0, manifest, scan, shipment

RULES = SlaRules()
RETENTION = Retention(retention_ms=30 * DAY, expire_ms=60 * DAY, unit_retention_ms=7 * DAY)


def delivered() -> Parcel:
    parcel = None
    for event in (
        scan("ORDER_CREATED", T0, "o", with_shipment=shipment()),
        scan("OUT_FOR_DELIVERY", T0 + DAY, "ofd"),
        scan("DELIVERED", T0 + DAY + HOUR, "d"),
    ):
        parcel = apply_scan(parcel, event, RULES, event["event_time_ms"]).parcel
    assert parcel is not None
    return parcel


def test_a_closed_parcel_is_archived_after_its_retention_then_its_marker_goes() -> None:
    parcel = delivered()
    closed = T0 + DAY + HOUR
    assert parcel.closed_since_ms == closed
    assert due_ms(parcel, RULES, RETENTION) == closed + 30 * DAY
    early = apply_due(parcel, RULES, RETENTION, closed + 29 * DAY)
    assert not early.archived and not early.gone
    outcome = apply_due(parcel, RULES, RETENTION, closed + 31 * DAY)  # the timer may fire late
    marker = outcome.parcel
    assert outcome.archived and outcome.changed and not outcome.gone
    assert marker.archived_at_ms == closed + 30 * DAY  # event time of the decision, not of the tick
    assert marker.to_dict() == {"tn": parcel.tracking_number, "v": parcel.version + 1, "archived": closed + 30 * DAY}
    with pytest.raises(InvalidScanError) as error:
        apply_scan(marker, scan("HUB_SORTED", closed + 40 * DAY, "late"), RULES, closed + 40 * DAY)
    assert error.value.reason_code == "parcel_archived"
    assert due_ms(marker, RULES, RETENTION) == closed + 90 * DAY
    assert not apply_due(marker, RULES, RETENTION, closed + 89 * DAY).gone
    assert apply_due(marker, RULES, RETENTION, closed + 90 * DAY).gone


def test_a_later_scan_reopens_a_closed_parcel_and_the_timer_decides_again() -> None:
    parcel = delivered()
    apply_scan(parcel, scan("OUT_FOR_DELIVERY", T0 + 20 * DAY, "again"), RULES, T0 + 20 * DAY)
    assert parcel.closed_since_ms is None
    # The timer set for the delivery comes: nothing is archived, the parcel's new due time counts.
    outcome = apply_due(parcel, RULES, RETENTION, T0 + 31 * DAY + HOUR)
    assert not outcome.archived and not outcome.gone


def test_an_open_parcel_silent_too_long_expires_then_is_archived_and_a_newer_scan_reopens_it() -> None:
    parcel = apply_scan(None, scan("LINEHAUL_DEPARTED", T0, "dep"), RULES, T0).parcel
    version = parcel.version
    expires = T0 + 60 * DAY
    assert due_ms(parcel, RULES, RETENTION) <= expires  # SLA deadlines come first
    outcome = apply_due(parcel, RULES, RETENTION, expires)
    assert outcome.changed and parcel.version == version + 1
    (update,) = outcome.status_updates
    assert (update["status"], update["sub_status"], update["event_time_ms"]) == ("Expired", "expired", expires)
    record = parcel.to_record()
    assert (record["status"], record["sub_status"], record["estimated_delivery"]) == ("Expired", "expired", None)
    assert parcel.closed_since_ms == expires and due_ms(parcel, RULES, RETENTION) == expires + 30 * DAY
    # Expiry again publishes nothing new.
    again = apply_due(parcel, RULES, RETENTION, expires + DAY)
    assert not again.status_updates and not again.archived

    found = apply_scan(parcel, scan("LINEHAUL_ARRIVED", expires + 2 * DAY, "arr"), RULES, expires + 2 * DAY)
    assert parcel.status == "InTransit" and parcel.closed_since_ms is None
    assert [(u["status"], u["previous_status"]) for u in found.status_updates] == [("InTransit", "Expired")]
    assert apply_due(parcel, RULES, RETENTION, expires + 40 * DAY).archived is False


def test_a_unit_is_forgotten_after_its_retention_and_a_reused_id_starts_a_fresh_membership() -> None:
    unit, _ = apply_manifest(None, manifest("m1", "AKE1", ["LP000000001CN"], time_ms=T0), retention_ms=7 * DAY)
    unit, copies = apply_unit_scan(
        unit,
        scan("LINEHAUL_DEPARTED", T0 + HOUR, "u1", tracking_number=None, handling_unit="AKE1"),
        retention_ms=7 * DAY,
    )
    assert [c["tracking_number"] for c in copies] == ["LP000000001CN"]
    assert unit_due_ms(unit, 7 * DAY) == T0 + HOUR + 7 * DAY
    later = scan("LINEHAUL_DEPARTED", T0 + 8 * DAY, "u2", tracking_number=None, handling_unit="AKE1")
    reused, copies = apply_unit_scan(unit, later, retention_ms=7 * DAY)
    assert copies == [] and reused.membership == {} and reused.last_seen_ms == T0 + 8 * DAY
