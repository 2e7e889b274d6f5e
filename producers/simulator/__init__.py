"""The hub simulator: seeded, realistic traffic for the Liège hub, and a runner that publishes it
in compressed real time.

    from producers.simulator import SimulationConfig, simulate
    simulation = simulate(SimulationConfig(seed=7, parcels=50, start_ms=...))
    simulation.records  # TimedRecord(publish_at_ms, kind, value) in publish order
    simulation.truth    # tracking number → ParcelTruth
"""

from producers.simulator.model import (
    LANES,
    AnomalyRates,
    ParcelTruth,
    Simulation,
    SimulationConfig,
    TimedRecord,
    simulate,
)

__all__ = ["LANES", "AnomalyRates", "ParcelTruth", "Simulation", "SimulationConfig", "TimedRecord", "simulate"]
