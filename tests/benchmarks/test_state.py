"""The core benchmark (``python -m benchmarks.state --core-scans``) over a small dataset."""

from __future__ import annotations

from benchmarks import state


def test_the_core_benchmark_times_every_input_and_its_outputs_repeat_exactly() -> None:
    result = state.measure_core(scans=300, seed=7, repeats=2)
    assert result["inputs"] > 300  # the scans, the manifests and the fan-out copies fed back
    assert result["cpu_us_per_input"] > 0 and len(result["cpu_us_per_input_runs"]) == 2
    assert 0 < result["stored_bytes_per_parcel"] <= 3000
    assert len(result["outputs_sha256"]) == 64  # the same in both passes, or measure_core raises
