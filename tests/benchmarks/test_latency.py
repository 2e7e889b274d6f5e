"""The latency instrument's percentiles (benchmarks/latency.py): over every ParcelState, and apart
for the states that came by fan-out, whose tail alone can set the overall p99."""

from __future__ import annotations

import math

from benchmarks.latency import latency_result


def test_one_unit_scans_members_set_the_overall_p99_and_are_reported_apart() -> None:
    own = [(float(ms), False) for ms in range(1, 197)]  # 196 states of the parcels' own scans: 1-196 ms
    members = [(677.0, True)] * 4  # one unit scan copied to 4 members, 2 % of the states
    result = latency_result(800.0, 200, members + own)

    assert (result.states, result.fanout_states) == (200, 4)
    assert result.p99_ms == 677.0
    assert result.fanout_p99_ms == 677.0
    assert result.direct_p99_ms == 194.0


def test_a_window_without_unit_scans_has_no_fanout_percentile() -> None:
    result = latency_result(40.0, 3, [(12.0, False), (15.0, False), (30.0, False)])

    assert result.fanout_states == 0
    assert math.isnan(result.fanout_p99_ms)
    assert result.direct_p99_ms == result.p99_ms == 30.0
