from __future__ import annotations

from collections import Counter

import pytest

from producers.simulator.hostile import (
    EXPECTED_REASONS,
    KINDS,
    YEAR_2100_MS,
    hostile_records,
    with_hostile,
)
from producers.simulator.model import SimulationConfig, simulate
from schemas.codec import default_codec

START_MS = 1_780_000_000_000


def _simulation(parcels: int = 120, seed: int = 5):
    return simulate(SimulationConfig(seed=seed, parcels=parcels, start_ms=START_MS))


def test_every_kind_is_mixed_in_and_carries_its_reasons() -> None:
    hostile = hostile_records(_simulation(), rate=0.01)
    kinds = Counter(h.kind for h in hostile)
    assert set(kinds) == set(KINDS)
    assert all(h.reasons == EXPECTED_REASONS[h.kind] for h in hostile)
    assert all(h.record.hostile == h.kind for h in hostile)
    # Every kind has at least one record the pipeline must refuse.
    assert {h.kind for h in hostile if h.refused} == set(KINDS)


def test_honest_records_and_truth_are_unchanged() -> None:
    honest = _simulation()
    mixed, hostile = with_hostile(honest, rate=0.02)
    assert mixed.truth == honest.truth
    kept = [r for r in mixed.records if r.hostile is None]
    assert kept == honest.records
    assert len(mixed.records) == len(honest.records) + len(hostile)
    assert [r.publish_at_ms for r in mixed.records] == sorted(r.publish_at_ms for r in mixed.records)


def test_same_seed_same_hostile_records() -> None:
    assert hostile_records(_simulation(), 0.01) == hostile_records(_simulation(), 0.01)
    assert hostile_records(_simulation(), 0.01, seed=1) != hostile_records(_simulation(), 0.01, seed=2)


def test_hostile_records_encode_against_the_contracts() -> None:
    """They pass the edge's shape checks: only their meaning is hostile."""
    codec = default_codec()
    for h in hostile_records(_simulation(), rate=0.02):
        name = "ScanEvent" if h.record.kind == "scan" else "Manifest"
        decoded = codec.decode(codec.encode(name, h.record.value))
        assert decoded.value["event_time_ms"] == h.record.value["event_time_ms"]


def test_targets_are_honest_parcels_and_hostile_units() -> None:
    simulation = _simulation()
    for h in hostile_records(simulation, rate=0.02):
        value = h.record.value
        if h.kind == "unit_self":
            assert value["members"] == [value["handling_unit"]]
        elif h.kind in ("far_future", "forged_order", "ancient_order", "wrong_carrier", "year_10000"):
            assert value["tracking_number"] in simulation.truth
        if h.kind == "far_future":
            assert value["event_time_ms"] >= YEAR_2100_MS
        if h.kind == "forged_order":
            order = next(
                r.value
                for r in simulation.records
                if r.value.get("tracking_number") == value["tracking_number"] and r.value["code"] == "ORDER_CREATED"
            )
            assert value["shipment"]["merchant"] != order["shipment"]["merchant"]
            assert value["event_time_ms"] < order["event_time_ms"]


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_rate_is_bounded(rate: float) -> None:
    with pytest.raises(ValueError, match="hostile rate"):
        hostile_records(_simulation(10), rate)


def test_no_hostile_records_at_rate_zero() -> None:
    simulation = _simulation(10)
    assert with_hostile(simulation, 0.0) == (simulation, [])
