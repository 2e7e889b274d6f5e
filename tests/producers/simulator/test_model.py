"""The pure simulator: determinism, validity against the contracts, anomalies, and ground truth."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import pytest

from producers.formats.code_maps import normalise
from producers.formats.identifiers import is_valid_awb, is_valid_container, is_valid_s10
from producers.simulator import AnomalyRates, Simulation, SimulationConfig, simulate
from schemas.codec import default_codec
from schemas.scan_codes import SCAN_CODES
from tests.producers.simulator.conftest import START_MS

HOUR = 3_600_000
DAY = 24 * HOUR


def _scans(simulation: Simulation) -> list[dict[str, Any]]:
    return [r.value for r in simulation.records if r.kind == "scan"]


def _distinct_scans(simulation: Simulation) -> dict[str, dict[str, Any]]:
    return {scan["event_id"]: scan for scan in _scans(simulation)}


def test_same_seed_gives_identical_output() -> None:
    config = SimulationConfig(seed=5, parcels=120, start_ms=START_MS)
    first, second = simulate(config), simulate(config)
    assert first.records == second.records
    assert first.truth == second.truth


def test_different_seeds_give_different_output() -> None:
    first = simulate(SimulationConfig(seed=5, parcels=120, start_ms=START_MS))
    second = simulate(SimulationConfig(seed=6, parcels=120, start_ms=START_MS))
    assert set(first.truth) != set(second.truth)
    assert [r.value.get("event_id") for r in first.records] != [r.value.get("event_id") for r in second.records]


def test_every_record_validates_against_its_schema(default_simulation: Simulation) -> None:
    codec = default_codec()
    for record in default_simulation.records:
        record_name = "ScanEvent" if record.kind == "scan" else "Manifest"
        assert codec.validate(record_name, record.value) == [], record.value


def test_codes_are_known_and_match_the_carriers_raw_codes(default_simulation: Simulation) -> None:
    for scan in _scans(default_simulation):
        assert scan["code"] in SCAN_CODES
        assert normalise(scan["raw_format"], scan["raw_code"]) == scan["code"], scan


def test_identifiers_carry_valid_check_digits(default_simulation: Simulation) -> None:
    awbs, containers = set(), set()
    for record in default_simulation.records:
        references = record.value["references"]
        if references["awb"]:
            awbs.add(references["awb"])
        if references["container"]:
            containers.add(references["container"])
    assert awbs and containers
    assert all(is_valid_awb(awb) for awb in awbs), awbs
    assert all(is_valid_container(number) for number in containers), containers
    assert all(is_valid_s10(tracking_number) for tracking_number in default_simulation.truth)


def test_every_parcel_starts_with_order_created_and_its_shipment(default_simulation: Simulation) -> None:
    first_sent: dict[str, dict[str, Any]] = {}
    earliest: dict[str, dict[str, Any]] = {}
    for scan in _scans(default_simulation):
        tracking_number = scan["tracking_number"]
        if tracking_number is None:
            continue
        first_sent.setdefault(tracking_number, scan)
        if tracking_number not in earliest or scan["event_time_ms"] < earliest[tracking_number]["event_time_ms"]:
            earliest[tracking_number] = scan
    assert set(first_sent) == set(default_simulation.truth)
    for tracking_number, scan in first_sent.items():
        assert scan["code"] == "ORDER_CREATED"
        assert earliest[tracking_number] is scan
        assert scan["shipment"]["service_level"] == default_simulation.truth[tracking_number].service_level
        assert scan["shipment"]["ordered_time_ms"] == scan["event_time_ms"]


def test_linehaul_scans_are_about_units(default_simulation: Simulation) -> None:
    linehaul = [s for s in _scans(default_simulation) if s["source"] in ("flight", "rail", "sea")]
    assert linehaul
    assert all(s["tracking_number"] is None and s["handling_unit"] for s in linehaul)
    assert {s["code"] for s in linehaul} >= {"LINEHAUL_DEPARTED", "LINEHAUL_ARRIVED", "LINEHAUL_UNLOADED"}


def test_lanes_take_realistic_times(clean_simulation: Simulation) -> None:
    """Departure to arrival at LGG: ~12 h by air, 16–20 days by rail, 30–35 days by sea."""
    scans = _scans(clean_simulation)
    lane_of_unit = {t.unit: t.lane for t in clean_simulation.truth.values()}
    departed: dict[str, int] = {}
    arrived: dict[str, int] = {}
    for scan in scans:
        unit = scan["handling_unit"]
        if unit and scan["code"] == "LINEHAUL_DEPARTED":
            departed[unit] = scan["event_time_ms"]
        if unit and scan["code"] == "LINEHAUL_ARRIVED":
            arrived[unit] = scan["event_time_ms"]
    bounds = {"air": (11 * HOUR, 13 * HOUR), "export": (11 * HOUR, 13 * HOUR), "rail": (14 * DAY, 19 * DAY)}
    bounds["sea"] = (29 * DAY, 35 * DAY)
    assert set(lane_of_unit.values()) == {"air", "rail", "sea", "export"}
    for unit, lane in lane_of_unit.items():
        low, high = bounds[lane]
        assert low <= arrived[unit] - departed[unit] <= high, (lane, unit)


def test_event_times_carry_local_offsets(default_simulation: Simulation) -> None:
    offsets: dict[str, set[int]] = defaultdict(set)
    for scan in _scans(default_simulation):
        offsets[scan["location"]["country"]].add(scan["utc_offset_minutes"])
    assert offsets["CN"] == {480}
    assert offsets["BE"] <= {60, 120} and offsets["BE"]


def test_export_share_sets_the_export_flow() -> None:
    only_import = simulate(SimulationConfig(seed=3, parcels=100, start_ms=START_MS, export_share=0.0))
    only_export = simulate(SimulationConfig(seed=3, parcels=100, start_ms=START_MS, export_share=1.0))
    assert {t.flow for t in only_import.truth.values()} == {"import"}
    assert {t.lane for t in only_export.truth.values()} == {"export"}
    export_scans = _scans(only_export)
    assert {s["shipment"]["origin_country"] for s in export_scans if s["shipment"]} == {"BE"}
    # China Post reports the last mile in UPU codes, ending with EMI (delivered).
    assert {t.final_code for t in only_export.truth.values()} == {"DELIVERED"}
    assert any(s["raw_code"] == "EMI" and s["raw_format"] == "upu-emsevt" for s in export_scans)


def _anomaly_signs(simulation: Simulation) -> Counter[str]:
    """Anomalies as a reader of the records sees them, found without the simulator's own counts."""
    signs: Counter[str] = Counter()
    sent_ids = Counter(r.value["event_id"] for r in simulation.records if r.kind == "scan")
    signs["duplicate_scan"] = sum(1 for count in sent_ids.values() if count > 1)
    latest_sent: dict[str, int] = {}
    first_unit_scan_sent: dict[str, int] = {}
    manifest_sent: dict[str, int] = {}
    manifested_at: dict[str, int] = {}
    departed_at: dict[str, int] = {}
    for record in simulation.records:
        value = record.value
        if record.kind == "manifest":
            manifest_sent.setdefault(value["handling_unit"], record.publish_at_ms)
            manifested_at[value["handling_unit"]] = value["event_time_ms"]
            continue
        key = value["tracking_number"] or value["handling_unit"]
        if value["event_time_ms"] < latest_sent.get(key, value["event_time_ms"]):
            signs["out_of_order"] += 1
        latest_sent[key] = max(latest_sent.get(key, 0), value["event_time_ms"])
        if record.publish_at_ms - value["event_time_ms"] > 2 * HOUR:
            signs["late_scan"] += 1
        if value["handling_unit"]:
            first_unit_scan_sent.setdefault(value["handling_unit"], record.publish_at_ms)
            if value["code"] == "LINEHAUL_DEPARTED":
                departed_at[value["handling_unit"]] = value["event_time_ms"]
        signs["customs_hold"] += value["code"] == "IMPORT_CUSTOMS_HELD"
        signs["failed_attempt"] += value["code"] == "DELIVERY_ATTEMPT_FAILED"
        signs["pickup_point"] += value["code"] == "AVAILABLE_FOR_PICKUP"
        signs["missort"] += value["code"] == "HUB_MISSORTED"
        signs["return_to_sender"] += value["code"] == "RETURN_TO_SENDER"
    signs["container_scan_before_manifest"] = sum(
        1 for unit, sent in first_unit_scan_sent.items() if unit in manifest_sent and sent < manifest_sent[unit]
    )
    # A departure waits for its last unit's build-up; beyond the lane's normal wait it left late.
    lane_of_unit = {truth.unit: truth.lane for truth in simulation.truth.values()}
    normal_wait = {"air": 8 * HOUR, "export": 8 * HOUR, "rail": 27 * HOUR, "sea": 3 * DAY + 2 * HOUR}
    last_built: dict[tuple[str, int], int] = {}
    for unit, departed in departed_at.items():
        departure = (lane_of_unit[unit], departed)
        last_built[departure] = max(last_built.get(departure, 0), manifested_at[unit])
    signs["delayed_flight"] = sum(
        1 for (lane, departed), built in last_built.items() if departed - built > normal_wait[lane]
    )
    signs["lost_bag"] = sum(1 for truth in simulation.truth.values() if truth.lost)
    return signs


def test_no_anomaly_appears_when_every_rate_is_zero(clean_simulation: Simulation) -> None:
    assert +_anomaly_signs(clean_simulation) == Counter()
    assert not clean_simulation.anomalies


def test_every_anomaly_appears_at_a_high_rate(anomalous_simulation: Simulation) -> None:
    signs = _anomaly_signs(anomalous_simulation)
    for name in AnomalyRates.__dataclass_fields__:
        assert anomalous_simulation.anomalies[name] > 0, name
        assert signs[name] > 0, name


def test_anomaly_counts_follow_their_rates() -> None:
    """A per-scan rate of 0.1 duplicates about a tenth of the scans (binomial, wide bounds)."""
    rates = AnomalyRates.none()
    config = SimulationConfig(
        seed=21,
        parcels=300,
        start_ms=START_MS,
        anomalies=AnomalyRates(
            **{
                **vars(rates),
                "duplicate_scan": 0.1,
                "customs_hold": 0.3,
            }
        ),
    )
    simulation = simulate(config)
    scans = len(_distinct_scans(simulation)) - len(simulation.truth)  # ORDER_CREATED is never duplicated
    assert 0.06 * scans < simulation.anomalies["duplicate_scan"] < 0.14 * scans
    arrived = sum(1 for t in simulation.truth.values() if not t.lost)
    assert 0.18 * arrived < simulation.anomalies["customs_hold"] < 0.42 * arrived


def test_lost_bags_stop_their_parcels_scans() -> None:
    config = SimulationConfig(
        seed=8,
        parcels=60,
        start_ms=START_MS,
        export_share=0.0,  # export parcels are received at the LGG hub before their flight
        anomalies=AnomalyRates(**{**vars(AnomalyRates.none()), "lost_bag": 1.0}),
    )
    simulation = simulate(config)
    assert all(truth.lost for truth in simulation.truth.values())
    parcel_codes = {s["code"] for s in _scans(simulation) if s["tracking_number"]}
    assert not parcel_codes & {"IMPORT_CUSTOMS_PRESENTED", "HUB_RECEIVED", "DELIVERED"}
    assert {t.final_code for t in simulation.truth.values()} <= {"LINEHAUL_UNLOADED", "LINEHAUL_DISCREPANCY"}


@pytest.mark.parametrize("fixture_name", ["default_simulation", "anomalous_simulation"])
def test_truth_matches_the_events_reaching_each_parcel(fixture_name: str, request: pytest.FixtureRequest) -> None:
    """Recomputed from the records alone: membership from the manifests, unit scans fanned out."""
    simulation: Simulation = request.getfixturevalue(fixture_name)
    container_of: dict[str, set[str]] = defaultdict(set)  # member → units holding it
    for record in simulation.records:
        if record.kind == "manifest":
            for member in record.value["members"]:
                container_of[member].add(record.value["handling_unit"])
    scans_by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for scan in _distinct_scans(simulation).values():
        scans_by_key[scan["tracking_number"] or scan["handling_unit"]].append(scan)

    def reaching(key: str) -> list[dict[str, Any]]:
        found = list(scans_by_key[key])
        for unit in container_of[key]:
            found += reaching(unit)
        return found

    for tracking_number, truth in simulation.truth.items():
        events = reaching(tracking_number)
        latest_time = max(e["event_time_ms"] for e in events)
        latest = [e for e in events if e["event_time_ms"] == latest_time]
        assert len(latest) == 1
        assert truth.final_code == latest[0]["code"]
        assert truth.final_event_time_ms == latest_time
        assert sorted(truth.event_ids) == sorted({e["event_id"] for e in events})
