"""``parcelstream publish`` run as its own process, as users run it: exit codes, issues on stderr,
the summary, and one clear line (no traceback) when the broker cannot be reached."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from deploy.embedded import free_port
from schemas.topics import TopicNames
from tests.producers.conftest import ReadMessage
from tests.producers.test_publish import MANIFEST, scan

pytestmark = pytest.mark.integration

PARCELSTREAM = [sys.executable, "-c", "from deploy.cli import main; main()"]
XFSU_FIXTURES = Path(__file__).parent / "formats" / "fixtures" / "iata_xfsu"


def run_publish(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [*PARCELSTREAM, "publish", *args], check=False, capture_output=True, text=True, timeout=120, env=environment
    )


def test_malformed_lines_exit_2_and_are_dead_lettered(
    tmp_path: Path,
    bootstrap_servers: str,
    topics: TopicNames,
    read_topic: Callable[[str, int], list[ReadMessage]],
) -> None:
    path = tmp_path / "mixed.ndjson"
    lines = [
        scan("e1", tracking_number="LP000000001CN"),
        "not json",
        MANIFEST,
        scan("e2", tracking_number="LP000000002CN", code="X"),
    ]
    path.write_text("\n".join(lines) + "\n")

    # Connection settings from the environment, as an operator would set them.
    result = run_publish(
        str(path),
        env={"PARCELSTREAM_BOOTSTRAP_SERVERS": bootstrap_servers, "PARCELSTREAM_TOPIC_PREFIX": topics.prefix},
    )

    assert result.returncode == 2, result.stderr
    assert f"{path}:2 (line): is not valid JSON" in result.stderr
    assert f"{path}:4 code: 'X' is not a parcelstream scan code" in result.stderr
    assert "Traceback" not in result.stderr
    summary = {
        line.split("│")[1].strip(): line.split("│")[2].strip() for line in result.stdout.splitlines() if "│" in line
    }
    assert summary["records read"] == "4"
    assert summary[f"published to {topics.scans}"] == "1"
    assert summary[f"published to {topics.manifests}"] == "1"
    assert summary[f"dead-lettered to {topics.dead_letters}"] == "2"
    assert summary["failed delivery"] == "0"
    [scan_message] = read_topic(topics.scans, 1)
    assert scan_message.decoded.value["event_id"] == "e1"
    dead_letters = sorted(read_topic(topics.dead_letters, 2), key=lambda m: m.decoded.value["source_reference"])
    assert [m.decoded.value["source_reference"] for m in dead_letters] == [f"{path}:2", f"{path}:4"]
    assert dead_letters[0].decoded.value["payload"] == b"not json"
    assert dead_letters[1].decoded.value["reason"].startswith(f"{path}:4 code:")


def test_everything_published_exits_0(tmp_path: Path, bootstrap_servers: str, topics: TopicNames) -> None:
    path = tmp_path / "feed.csv"
    path.write_text(
        "event_id,tracking_number,source,code,carrier,event_time\n"
        "c1,LP000000001CN,lastmile,DELIVERED,BPOST,2026-11-24T14:02:00+01:00\n"
    )
    result = run_publish(
        str(path), "--carrier", "BPOST", "--bootstrap-servers", bootstrap_servers, "--topic-prefix", topics.prefix
    )
    assert result.returncode == 0, result.stderr
    assert f"published to {topics.scans}" in result.stdout


def test_xfsu_files_with_format_xfsu(
    bootstrap_servers: str, topics: TopicNames, read_topic: Callable[[str, int], list[ReadMessage]]
) -> None:
    departure, unknown = XFSU_FIXTURES / "dep_part_shipment.xml", XFSU_FIXTURES / "unknown_status.xml"
    connection = ["--bootstrap-servers", bootstrap_servers, "--topic-prefix", topics.prefix]
    # The fixtures are dated 2024: --max-age lets them through (the default is 365 days).
    result = run_publish(str(departure), str(unknown), "--format", "xfsu", "--max-age", "3153600000", *connection)

    assert result.returncode == 2, result.stderr
    assert f"{unknown} status 1 ReportedStatus[0].ReasonCode: unknown iata-xfsu code 'ZZZ'" in result.stderr
    scans = sorted((m.decoded.value for m in read_topic(topics.scans, 2)), key=lambda scan: scan["raw_code"])
    assert [(s["raw_format"], s["raw_code"], s["handling_unit"], s["carrier"]) for s in scans] == [
        ("iata-xfsu", "DEP", "020-12345675", "020"),
        ("iata-xfsu", "RCS", "020-12345675", "020"),
    ]
    [dead_letter] = read_topic(topics.dead_letters, 1)
    assert dead_letter.decoded.value["source_reference"] == f"{unknown} status 1"
    payload = dead_letter.decoded.value["payload"]  # that ReportedStatus element only
    assert b"ReasonCode>ZZZ</" in payload and b"RCS" not in payload and payload.endswith(b"ReportedStatus>")


def test_unreachable_broker_is_one_line_and_exit_1(tmp_path: Path) -> None:
    path = tmp_path / "scans.jsonl"
    path.write_text(scan("e1", tracking_number="LP000000001CN") + "\n")
    address = f"127.0.0.1:{free_port()}"
    result = run_publish(str(path), "--bootstrap-servers", address, "--timeout", "2")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error:") and address in line and "did not answer within 2 s" in line


@pytest.mark.parametrize(
    ("file_name", "extra", "message"),
    [
        ("scans.txt", [], "cannot tell the format from the extension; pass --format"),
        ("scans.jsonl", ["--topic-prefix", "no-such-prefix"], "no-such-prefix.scans"),
    ],
)
def test_setup_problems_are_one_line_and_exit_1(
    tmp_path: Path, bootstrap_servers: str, file_name: str, extra: list[str], message: str
) -> None:
    path = tmp_path / file_name
    path.write_text(scan("e1", tracking_number="LP000000001CN") + "\n")
    result = run_publish(str(path), "--bootstrap-servers", bootstrap_servers, *extra)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error:") and message in line
