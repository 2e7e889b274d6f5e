"""Smoke run of the benchmark harness: a few thousand scans through the raw loop and one worker."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_saves_positive_throughputs_and_the_ratio_keys(tmp_path: Path) -> None:
    output = tmp_path / "result.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.run",
            "--quick",
            "--scans",
            "2000",
            "--timeout",
            "90",
            "--output",
            str(output),
            "--only",
            "raw_confluent",
            "core_only",
            "parcelstream_1w",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(output.read_text())
    assert report["dataset"]["scans"] == 2000
    contenders = report["contenders"]
    assert set(contenders) == {"raw_confluent", "core_only", "parcelstream_1w"}
    for name, contender in contenders.items():
        assert contender["ok"], f"{name}: {contender['error']}"
        assert contender["scans_per_s"] > 0
        assert contender["state_updates_per_s"] > 0
        assert contender["peak_rss_bytes"] > 0
        assert {"ratio_to_raw", "ratio_to_quix", "ratio_to_naive_faust"} <= set(contender)
    # The raw loop is the only raw reference here, so its own ratio is exactly 1; the worker's is positive.
    assert contenders["raw_confluent"]["ratio_to_raw"] == 1.0
    assert contenders["parcelstream_1w"]["ratio_to_raw"] > 0
    assert contenders["parcelstream_1w"]["ratio_to_quix"] is None  # Quix Streams was not run
    # The worker publishes one ParcelState per changed parcel per batch (parcel-state is compacted), so
    # every parcel of the dataset has at least one.
    assert contenders["parcelstream_1w"]["state_updates"] >= report["dataset"]["parcels"]
    assert 0 < contenders["parcelstream_1w"]["state_bytes_per_parcel"] <= 3000
    assert report["targets"]["state_bytes_per_parcel"]["met"] is True
    assert "parcelstream_1w" in done.stdout
    # The core alone read every record of the dataset and handled the fan-out copies it made besides.
    records = report["dataset"]["scans"] + report["dataset"]["manifests"]
    assert contenders["core_only"]["inputs"] > records
    assert contenders["core_only"]["state_updates"] >= report["dataset"]["parcels"]
    # Its ceilings are over raw aiokafka and Quix, neither run here.
    assert report["ceilings"] == {"one_worker_vs_raw_aiokafka": None, "one_worker_vs_quix": None}
