"""The ``simulate`` command: files for replay, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from producers.formats.native import parse_jsonl
from producers.simulator.cli import app
from schemas.topics import TopicNames


def test_output_writes_replayable_json_lines(tmp_path: Path) -> None:
    output = tmp_path / "hub.jsonl"

    result = CliRunner().invoke(
        app, ["--seed", "4", "--parcels", "30", "--start", "2026-11-11T00:00:00+08:00", "--output", str(output)]
    )

    assert result.exit_code == 0, result.output
    parsed = parse_jsonl(output.read_bytes(), output.name)
    assert parsed.issues == []
    assert sum(1 for r in parsed.records if r.kind == "scan" and r.value["code"] == "ORDER_CREATED") == 30


def test_rate_without_a_broker_target_is_refused_in_one_line() -> None:
    result = CliRunner().invoke(app, ["--rate", "10", "--dry-run"])

    assert result.exit_code == 2
    assert "--rate generates without end" in result.output
    assert "Traceback" not in result.output


@pytest.mark.integration
def test_missing_topics_are_reported_in_one_line(bootstrap_servers: str) -> None:
    result = CliRunner().invoke(
        app, ["--bootstrap-servers", bootstrap_servers, "--topic-prefix", "no-such-prefix", "--parcels", "1"]
    )

    assert result.exit_code == 2
    assert "no-such-prefix.scans" in result.output and "parcelstream topics create" in result.output
    assert "Traceback" not in result.output


@pytest.mark.integration
def test_publishes_and_summarises(bootstrap_servers: str, topics: TopicNames) -> None:
    arguments = ["--bootstrap-servers", bootstrap_servers, "--topic-prefix", topics.prefix]
    result = CliRunner().invoke(app, [*arguments, "--parcels", "10", "--speed", "0", "--seed", "9"])

    assert result.exit_code == 0, result.output
    assert "published per source" in result.output
    assert "10 parcels" in result.output and " 0 failed" in result.output
