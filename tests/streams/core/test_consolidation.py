from __future__ import annotations

import json
from typing import Any

import pytest

from schemas.codec import default_codec
from streams.core.consolidation import MAX_KEPT_SCANS, MAX_RECORDED_INPUTS, Unit, apply_manifest, apply_unit_scan
from streams.core.taxonomy import InvalidScanError
from tests.streams.builders import HOUR, T0, Pipeline, manifest, scan

BAG = "BAG-001"
ULD = "AKE12345CK"


def unit_scan(code: str, time_ms: int, unit: str = BAG, event_id: str | None = None) -> dict[str, Any]:
    return scan(code, time_ms, event_id, tracking_number=None, handling_unit=unit, source="flight")


def addressed(fan_out: list[dict[str, Any]]) -> list[tuple[str | None, str | None, str]]:
    return [(c["tracking_number"], c["handling_unit"], c["event_id"]) for c in fan_out]


def test_unit_scan_fans_out_to_every_parcel_member_with_the_bag_in_references() -> None:
    unit, fan_out = apply_manifest(None, manifest("m1", BAG, ["P1", "P2"]))
    assert fan_out == []
    original = unit_scan("LINEHAUL_DEPARTED", T0, event_id="dep-1")
    unit, fan_out = apply_unit_scan(unit, original)
    assert addressed(fan_out) == [("P1", None, "dep-1"), ("P2", None, "dep-1")]
    assert all(c["references"]["bag"] == BAG for c in fan_out)
    assert all(c["code"] == "LINEHAUL_DEPARTED" and c["event_time_ms"] == T0 for c in fan_out)
    assert original["handling_unit"] == BAG and original["references"]["bag"] is None  # not mutated
    codec = default_codec()
    assert [codec.validate("ScanEvent", c) for c in fan_out] == [[], []]


def test_bag_member_of_a_uld_gets_a_unit_addressed_copy() -> None:
    unit, _ = apply_manifest(None, manifest("m1", ULD, [BAG], unit_type="uld", member_type="bag"))
    _, fan_out = apply_unit_scan(unit, unit_scan("LINEHAUL_ARRIVED", T0, ULD, "arr"))
    assert addressed(fan_out) == [(None, BAG, "arr")]
    assert fan_out[0]["references"]["uld"] == ULD


def test_scans_before_the_manifest_are_kept_and_fanned_out_when_members_arrive() -> None:
    unit, fan_out = apply_unit_scan(None, unit_scan("LINEHAUL_DEPARTED", T0, event_id="dep"))
    assert fan_out == []
    unit, fan_out = apply_unit_scan(unit, unit_scan("LINEHAUL_ARRIVED", T0 + HOUR, event_id="arr"))
    assert fan_out == []
    unit, fan_out = apply_manifest(unit, manifest("m1", BAG, ["P1"]))
    assert addressed(fan_out) == [("P1", None, "dep"), ("P1", None, "arr")]


def test_a_member_added_later_receives_all_kept_scans_and_others_nothing_again() -> None:
    unit, _ = apply_manifest(None, manifest("m1", BAG, ["P1"]))
    unit, _ = apply_unit_scan(unit, unit_scan("LINEHAUL_DEPARTED", T0, event_id="dep"))
    unit, fan_out = apply_manifest(unit, manifest("m2", BAG, ["P1", "P2"], time_ms=T0 + HOUR))
    assert addressed(fan_out) == [("P2", None, "dep")]
    assert unit.members == {"P1": "parcel", "P2": "parcel"}


def test_a_removed_member_receives_no_later_scans_but_still_those_from_before_its_removal() -> None:
    unit, _ = apply_manifest(None, manifest("m1", BAG, ["P1", "P2"], time_ms=T0))
    unit, _ = apply_manifest(unit, manifest("m2", BAG, ["P2"], action="remove", time_ms=T0 + 2 * HOUR))
    assert unit.members == {"P1": "parcel"}
    _, fan_out = apply_unit_scan(unit, unit_scan("HUB_SORTED", T0 + 3 * HOUR, event_id="after"))
    assert addressed(fan_out) == [("P1", None, "after")]
    _, fan_out = apply_unit_scan(unit, unit_scan("LINEHAUL_ARRIVED", T0 + HOUR, event_id="before"))
    assert addressed(fan_out) == [("P1", None, "before"), ("P2", None, "before")]


def test_membership_follows_manifests_in_event_time_not_arrival_order() -> None:
    unit, _ = apply_manifest(None, manifest("remove", BAG, ["P1"], action="remove", time_ms=T0 + HOUR))
    unit, fan_out = apply_manifest(unit, manifest("add", BAG, ["P1"], time_ms=T0))
    assert unit.members == {}
    assert fan_out == []


def test_duplicate_manifest_and_scan_ids_change_nothing_and_replay_their_own_copies() -> None:
    unit, _ = apply_manifest(None, manifest("m1", BAG, ["P1"]))
    unit, first = apply_unit_scan(unit, unit_scan("LINEHAUL_DEPARTED", T0, event_id="dep"))
    assert len(first) == 1
    unit, again = apply_unit_scan(unit, unit_scan("LINEHAUL_DEPARTED", T0, event_id="dep"))
    assert again == first
    unit, again = apply_manifest(unit, manifest("m1", BAG, ["P1", "P9"]))
    assert again == []  # m1 fanned out nothing: the unit had no scans yet
    assert unit.members == {"P1": "parcel"}
    assert len(unit.scans) == 1


def test_replayed_fan_out_is_what_was_sent_then_not_what_the_membership_says_now() -> None:
    unit, _ = apply_manifest(None, manifest("m1", BAG, ["P1", "P2"]))
    unit, scanned = apply_unit_scan(unit, unit_scan("HUB_RECEIVED", T0 + HOUR, event_id="recv"))
    unit, joined = apply_manifest(unit, manifest("m2", BAG, ["P3"], time_ms=T0 + 2 * HOUR))
    # P1 leaves before the scan's time (a late manifest) and P4 joins: neither changes the replays.
    unit, _ = apply_manifest(unit, manifest("m3", BAG, ["P1"], action="remove", time_ms=T0))
    unit, _ = apply_manifest(unit, manifest("m4", BAG, ["P4"], time_ms=T0 + 3 * HOUR))
    restored = Unit.from_dict(json.loads(json.dumps(unit.to_dict())))
    assert addressed(scanned) == [("P1", None, "recv"), ("P2", None, "recv")]
    assert apply_unit_scan(restored, unit_scan("HUB_RECEIVED", T0 + HOUR, event_id="recv"))[1] == scanned
    assert addressed(joined) == [("P3", None, "recv")]
    assert apply_manifest(restored, manifest("m2", BAG, ["P3"], time_ms=T0 + 2 * HOUR))[1] == joined
    assert restored.to_dict() == unit.to_dict()


def test_the_fan_out_record_is_bounded_and_skips_evicted_scans() -> None:
    unit, _ = apply_manifest(None, manifest("m1", BAG, ["P1"]))
    for index in range(MAX_RECORDED_INPUTS + 3):
        unit, _ = apply_unit_scan(unit, unit_scan("HUB_SORTED", T0 + index, event_id=f"s{index}"))
    assert len(unit.recorded) == MAX_RECORDED_INPUTS
    assert "scan:s0" not in unit.recorded and f"scan:s{MAX_RECORDED_INPUTS + 2}" in unit.recorded
    assert apply_unit_scan(unit, unit_scan("HUB_SORTED", T0, event_id="s0"))[1] == []


def test_a_replayed_manifest_skips_the_scans_evicted_since() -> None:
    unit = None
    for index in range(3):
        unit, _ = apply_unit_scan(unit, unit_scan("HUB_SORTED", T0 + index, event_id=f"early{index}"))
    unit, joined = apply_manifest(unit, manifest("m1", BAG, ["P1"], time_ms=T0))
    assert len(joined) == 3
    unit, _ = apply_manifest(unit, manifest("m2", BAG, ["P1"], action="remove", time_ms=T0 + 10))
    for index in range(MAX_KEPT_SCANS - 1):  # after the removal: copied to no one, evict early0 and early1
        unit, fan_out = apply_unit_scan(unit, unit_scan("HUB_SORTED", T0 + HOUR + index, event_id=f"late{index}"))
        assert fan_out == []
    assert unit.evicted_scans == 2
    replayed = apply_manifest(unit, manifest("m1", BAG, ["P1"], time_ms=T0))[1]
    assert replayed == [joined[2]]


def test_kept_scans_are_bounded_oldest_first_and_evictions_counted() -> None:
    unit = None
    for index in range(MAX_KEPT_SCANS + 5):
        unit, _ = apply_unit_scan(unit, unit_scan("HUB_SORTED", T0 + (MAX_KEPT_SCANS + 5 - index) * 1000))
    assert unit is not None
    assert len(unit.scans) == MAX_KEPT_SCANS
    assert unit.evicted_scans == 5
    times = [s["event_time_ms"] for s in unit.scans]
    assert times == sorted(times)
    assert times[0] == T0 + 6 * 1000


def test_nesting_reaches_parcels_through_bags_with_both_units_in_references() -> None:
    pipeline = Pipeline()
    pipeline.feed("scan", unit_scan("LINEHAUL_DEPARTED", T0, ULD, "dep"))  # before any manifest
    pipeline.feed("manifest", manifest("uld-1", ULD, [BAG], unit_type="uld", member_type="bag"))
    pipeline.feed("manifest", manifest("bag-1", BAG, ["P1", "P2"]))
    pipeline.feed("scan", unit_scan("LINEHAUL_ARRIVED", T0 + HOUR, ULD, "arr"))
    pipeline.feed("scan", unit_scan("HUB_SORTED", T0 + 2 * HOUR, BAG, "sort"))
    for tracking_number in ("P1", "P2"):
        record = pipeline.parcels[tracking_number].to_record()
        assert [h["event_id"] for h in record["history"]] == ["dep", "arr", "sort"]
    assert pipeline.units[BAG].scans[0]["references"]["uld"] == ULD


def test_unit_round_trips_through_json() -> None:
    unit, _ = apply_manifest(None, manifest("m1", BAG, ["P1"]))
    unit, _ = apply_manifest(unit, manifest("m2", BAG, ["P1"], action="remove", time_ms=T0 + HOUR))
    unit, copies = apply_unit_scan(unit, unit_scan("HUB_SORTED", T0, event_id="s"))
    restored = Unit.from_dict(json.loads(json.dumps(unit.to_dict())))
    assert restored == unit
    assert apply_unit_scan(restored, unit_scan("HUB_SORTED", T0, event_id="s"))[1] == copies != []
    assert apply_manifest(restored, manifest("m1", BAG, ["P1"]))[1] == []
    assert restored.to_dict() == unit.to_dict()


@pytest.mark.parametrize(
    ("call", "reason_code"),
    [
        (lambda: apply_unit_scan(None, scan("HUB_SORTED", T0, tracking_number=None)), "missing_handling_unit"),
        (lambda: apply_unit_scan(Unit("OTHER"), unit_scan("HUB_SORTED", T0)), "wrong_unit"),
        (lambda: apply_manifest(Unit("OTHER"), manifest("m", BAG, ["P1"])), "wrong_unit"),
    ],
)
def test_misaddressed_input_is_refused(call: Any, reason_code: str) -> None:
    with pytest.raises(InvalidScanError) as error:
        call()
    assert error.value.reason_code == reason_code


def test_a_manifest_past_the_most_members_a_unit_keeps_is_refused_whole() -> None:
    unit, _ = apply_manifest(None, manifest("m1", "BAG-1", ["P1", "P2", "P3"]), max_members=4)
    before = unit.to_dict()
    with pytest.raises(InvalidScanError) as error:
        apply_manifest(unit, manifest("m2", "BAG-1", ["P3", "P4", "P5"]), max_members=4)
    assert error.value.reason_code == "unit_too_large"
    assert unit.to_dict() == before
    # Members already in the unit do not count twice: a manifest repeating them fits.
    unit, _ = apply_manifest(unit, manifest("m3", "BAG-1", ["P1", "P2", "P4"], action="remove"), max_members=4)
    assert set(unit.membership) == {"P1", "P2", "P3", "P4"}
