"""benchmarks/phases.py: the phase arithmetic on known marks, the tolerant reader, and a smoke run
of a probed worker."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.phases import analyse, read_records

REPO_ROOT = Path(__file__).resolve().parents[2]


def batch(base: float, timestamps: list[float]) -> dict[str, object]:
    """A batch of records produced at ``timestamps``, each fetched 10 ms and streamed 11 ms later;
    handed to the agent at base+0.1, outputs at +0.12, acks from +0.13 to +0.16, published at +0.17."""
    return {
        "kind": "batch",
        "timestamp": timestamps,
        "fetched": [t + 0.010 for t in timestamps],
        "time_in": [t + 0.011 for t in timestamps],
        "yielded": base + 0.100,
        "outputs": base + 0.120,
        "acks_started": base + 0.130,
        "acked": base + 0.160,
        "published": base + 0.170,
        "done": base + 0.171,
    }


def test_each_record_s_time_is_split_into_the_phases_of_its_batch() -> None:
    records = [
        batch(1000.0, [1000.0, 1000.05]),
        {"kind": "gc", "generation": 2, "start": 1000.2, "end": 1000.25},
        {"kind": "commit", "start": 1000.3, "end": 1000.31},
        batch(2000.0, [2000.0]),  # outside the window
    ]
    found = analyse(records, 999.0, 1500.0)
    assert found["batches"] == 1
    phases = found["phases_ms"]
    assert phases["to_worker"]["mean"] == pytest.approx(10)
    assert phases["stream"]["mean"] == pytest.approx(1)
    assert phases["filling"]["max"] == pytest.approx(89)  # the first record: 1000.011 -> 1000.1
    assert phases["filling"]["p50"] == pytest.approx(39, abs=0.01)  # the second: 1000.061 -> 1000.1
    assert phases["core"]["mean"] == pytest.approx(20)
    assert phases["writes"]["mean"] == pytest.approx(10)
    assert phases["changelog"]["mean"] == pytest.approx(30)
    assert phases["publish"]["mean"] == pytest.approx(10)
    assert phases["total"]["max"] == pytest.approx(170)
    assert found["slowest_1pct_mean_ms"]["total"] == pytest.approx(170)
    assert found["gc_ms"]["count"] == 1
    assert found["gc_ms"]["gen2"] == 1
    assert found["gc_ms"]["max"] == pytest.approx(50)
    assert found["commits_ms"]["count"] == 1


def test_a_batch_cut_short_is_left_out() -> None:
    unfinished = batch(1000.0, [1000.0])
    del unfinished["acked"]
    assert analyse([unfinished], 999.0, 1500.0)["phases_ms"]["total"] == {}


def test_lines_cut_short_or_with_foreign_bytes_before_them_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "phases.jsonl"
    good = {"kind": "commit", "start": 1.0, "end": 2.0}
    path.write_bytes(
        json.dumps(good).replace(" ", "").encode()
        + b"\n\x0eLX0649\x01\x00"
        + json.dumps(good).encode()
        + b'\n{"kind":"gc","gen'
    )
    assert read_records(path) == [good, good]


@pytest.mark.integration
def test_a_probed_worker_reports_the_phases_at_a_fixed_load(tmp_path: Path) -> None:
    output = tmp_path / "phases.json"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "benchmarks.phases", "run"),
            *("--rate", "40", "--seconds", "3", "--scans", "2000", "--output", str(output)),
            *("--env", "PARCELSTREAM_BATCH_TIMEOUT=0.05"),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(output.read_text())
    assert report["env"] == {"PARCELSTREAM_BATCH_TIMEOUT": "0.05"}
    [row] = report["rows"]
    assert row["latency"]["states"] > 0
    assert row["worker_cpu_ms_per_record"] > 0
    found = row["phases"]
    assert found["batches"] > 0
    phases = found["phases_ms"]
    assert all(phases[name]["p50"] >= 0 for name in ("stream", "filling", "core", "writes", "changelog", "publish"))
    # The batch timeout the worker was given bounds how long a record waits for its batch to fill.
    assert phases["filling"]["p50"] < 100
    assert "event → ParcelState" in done.stdout
