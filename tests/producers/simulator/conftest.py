"""Simulations shared by the simulator's tests: built once per module, since they are pure."""

from __future__ import annotations

import pytest

from producers.simulator import AnomalyRates, Simulation, SimulationConfig, simulate

#: 2026-03-20T10:00:00Z: a fixed clock so the simulations are reproducible.
START_MS = 1_774_000_800_000

#: Rates high enough that every anomaly shows up in a few hundred parcels.
HIGH_RATES = AnomalyRates(
    delayed_flight=0.5,
    lost_bag=0.2,
    missort=0.2,
    duplicate_scan=0.1,
    out_of_order=0.1,
    late_scan=0.1,
    container_scan_before_manifest=0.5,
    customs_hold=0.2,
    failed_attempt=0.2,
    pickup_point=0.2,
    return_to_sender=0.1,
)


@pytest.fixture(scope="module")
def default_simulation() -> Simulation:
    return simulate(SimulationConfig(seed=11, parcels=300, start_ms=START_MS))


@pytest.fixture(scope="module")
def anomalous_simulation() -> Simulation:
    config = SimulationConfig(
        seed=12, parcels=400, start_ms=START_MS, anomalies=HIGH_RATES, parcels_per_bag=10, bags_per_uld=2
    )
    return simulate(config)


@pytest.fixture(scope="module")
def clean_simulation() -> Simulation:
    config = SimulationConfig(seed=13, parcels=300, start_ms=START_MS, anomalies=AnomalyRates.none())
    return simulate(config)
