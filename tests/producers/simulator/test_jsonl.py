"""Simulated records written as native JSON Lines read back, through the native parser, as the same
records (so ``parcelstream simulate --output`` files replay with ``parcelstream publish``)."""

from __future__ import annotations

import io

from producers.formats.native import parse_jsonl
from producers.simulator import Simulation
from producers.simulator.jsonl import write_jsonl


def test_jsonl_round_trips_through_the_native_parser(anomalous_simulation: Simulation) -> None:
    buffer = io.StringIO()
    lines = write_jsonl(anomalous_simulation.records, buffer)
    assert lines == len(anomalous_simulation.records)

    result = parse_jsonl(buffer.getvalue().encode(), "simulation.jsonl")

    assert result.issues == []
    assert [(r.kind, r.value) for r in result.records] == [(r.kind, r.value) for r in anomalous_simulation.records]
