"""Smoke run of the delivery-estimate benchmark (no broker): a small learning and held-out period."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import estimates


def test_a_small_run_scores_both_estimators_and_saves_the_keys(tmp_path: Path) -> None:
    output = tmp_path / "estimates.json"
    argv = ["--learn-parcels", "600", "--eval-parcels", "200", "--learn-days", "20", "--eval-days", "5"]
    assert estimates.main([*argv, "--partitions", "1", "--min-deliveries", "3", "--output", str(output)]) == 0
    result = json.loads(output.read_text())
    assert result["evaluate"]["seed"] != result["learn"]["seed"]
    heuristic, learned = result["estimators"]["heuristic"], result["estimators"]["learned"]
    for scores in (heuristic, learned):
        assert {"coverage", "mae_hours", "width_hours"} <= scores.keys()
        assert scores["n"] > 0 and 0 <= scores["coverage"] <= 1 and scores["width_hours"] > 0
        assert "ordered" in scores["by_milestone"]
    assert heuristic["learned_share"] == 0
    assert learned["learned_share"] > 0  # some keys had enough deliveries: not the heuristic again
    assert set(result["met"]) == {"coverage", "width", "mae"}


def test_the_held_out_seed_must_differ_from_the_learning_seed(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        estimates.main(["--learn-seed", "5", "--eval-seed", "5", "--output", str(tmp_path / "x.json")])
