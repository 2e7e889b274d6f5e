"""publish_files against the real broker: what goes in comes back out, bad lines are dead-lettered,
and records the broker never acknowledged are reported, not counted."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from deploy.embedded import free_port
from producers.formats.native import parse_jsonl
from producers.publish import PublishSetupError, check_broker, publish_files
from producers.publisher import Publisher
from schemas.event_time import EventTimeSettings
from schemas.topics import TopicNames
from tests.producers.conftest import ReadMessage

pytestmark = pytest.mark.integration


def scan(event_id: str, *, tracking_number: str | None = None, handling_unit: str | None = None, **extra: Any) -> str:
    record = {
        "event_id": event_id,
        "tracking_number": tracking_number,
        "handling_unit": handling_unit,
        "source": "flight",
        "code": "LINEHAUL_DEPARTED",
        "raw_code": "DEP",
        "raw_format": "iata-fsu",
        "carrier": "CK",
        "event_time": "2026-11-20T08:15:00+08:00",
        "location": {"code": "HGH", "kind": "airport", "country": "CN"},
        "awb": "157-12345675",
        **extra,
    }
    return json.dumps({key: value for key, value in record.items() if value is not None})


MANIFEST = json.dumps(
    {
        "type": "manifest",
        "manifest_id": "M-BAG-7",
        "handling_unit": "BAG-7",
        "unit_type": "bag",
        "members": ["LP000000001CN", "LP000000002CN"],
        "member_type": "parcel",
        "carrier": "CK",
        "source": "warehouse",
        "event_time": "2026-11-20T06:00:00+08:00",
    }
)


@pytest.fixture
def publisher(bootstrap_servers: str, topics: TopicNames) -> Iterator[Publisher]:
    publisher = Publisher(bootstrap_servers, topics, **{"message.timeout.ms": 20_000, "log_level": 0})
    yield publisher
    publisher.flush(5)


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_published_file_reads_back_identical(
    tmp_path: Path, publisher: Publisher, topics: TopicNames, read_topic: Callable[[str, int], list[ReadMessage]]
) -> None:
    path = tmp_path / "scans.jsonl"
    lines = [
        scan("e1", tracking_number="LP000000001CN"),
        scan("e2", tracking_number="LP000000002CN", code="HUB_RECEIVED", source="warehouse", location="LGG-HUB-1"),
        scan("e3", handling_unit="AKE12345CK", references={"uld": "AKE12345CK", "flight_number": "CK261"}),
        MANIFEST,
        scan("e4", tracking_number="LP000000003CN", event_time="2026-11-21T09:00:00-05:00", reason="late truck"),
    ]
    path.write_text("\n".join(lines) + "\n")
    expected = parse_jsonl(path.read_bytes(), str(path))
    assert expected.issues == []
    departed_before = counter("parcelstream_scans_published_total", source="flight", code="LINEHAUL_DEPARTED")
    manifests_before = counter("parcelstream_manifests_published_total", unit_type="bag")

    summary = publish_files([path], None, publisher, carrier="CK", flush_timeout=25)

    assert summary.exit_code == 0
    assert summary.failures == [] and summary.issues == []
    assert summary.records_read == 5
    assert summary.published == {topics.scans: 4, topics.manifests: 1}
    assert summary.dead_lettered == 0
    scans = read_topic(topics.scans, 4)
    manifests = read_topic(topics.manifests, 1)
    assert read_topic(topics.dead_letters, 0) == []
    expected_scans = {r.value["event_id"]: r.value for r in expected.records if r.kind == "scan"}
    assert {m.decoded.value["event_id"]: m.decoded.value for m in scans} == expected_scans
    assert all(m.decoded.record_name == "ScanEvent" for m in scans)
    assert sorted(m.key for m in scans) == [b"AKE12345CK", b"LP000000001CN", b"LP000000002CN", b"LP000000003CN"]
    for message in scans:
        value = message.decoded.value
        assert message.key == (value["tracking_number"] or value["handling_unit"]).encode()
    [manifest] = manifests
    assert manifest.key == b"BAG-7"
    assert manifest.decoded.value == next(r.value for r in expected.records if r.kind == "manifest")
    assert counter("parcelstream_scans_published_total", source="flight", code="LINEHAUL_DEPARTED") == (
        departed_before + 3
    )
    assert counter("parcelstream_manifests_published_total", unit_type="bag") == manifests_before + 1


def test_malformed_lines_are_dead_lettered_and_the_rest_published(
    tmp_path: Path, publisher: Publisher, topics: TopicNames, read_topic: Callable[[str, int], list[ReadMessage]]
) -> None:
    path = tmp_path / "mixed.jsonl"
    bad_json = '{"event_id": "e9", '
    unknown_code = scan("e10", tracking_number="LP000000010CN", code="TELEPORTED")
    two_problems = scan("e11", tracking_number="LP000000011CN", event_time="2026-11-20T08:15:00", source="drone")
    path.write_bytes(
        "\n".join([scan("e1", tracking_number="LP000000001CN"), bad_json, unknown_code, "", two_problems]).encode()
        + b"\n\xff\xfe\n"
        + scan("e2", tracking_number="LP000000002CN").encode()
    )
    printed: list[str] = []
    dead_letters_before = counter("parcelstream_dead_letters_total", stage="producer", reason_code="unknown_code")

    summary = publish_files(
        [path], "jsonl", publisher, flush_timeout=25, on_issue=lambda i: printed.append(f"{i.reference} {i.field}")
    )

    assert summary.exit_code == 2
    assert summary.published == {topics.scans: 2}
    assert summary.dead_lettered == 4
    assert summary.records_read == 6
    assert sorted(printed) == sorted(
        [f"{path}:2 (line)", f"{path}:3 code", f"{path}:5 event_time", f"{path}:5 source", f"{path}:6 (line)"]
    )
    assert sorted(m.decoded.value["event_id"] for m in read_topic(topics.scans, 2)) == ["e1", "e2"]
    dead_letters = {m.decoded.value["source_reference"]: m.decoded.value for m in read_topic(topics.dead_letters, 4)}
    assert set(dead_letters) == {f"{path}:2", f"{path}:3", f"{path}:5", f"{path}:6"}
    assert dead_letters[f"{path}:2"]["payload"] == bad_json.encode()
    assert dead_letters[f"{path}:3"]["payload"] == unknown_code.encode()
    assert dead_letters[f"{path}:6"]["payload"] == b"\xff\xfe"
    assert dead_letters[f"{path}:3"]["reason_code"] == "unknown_code"
    assert dead_letters[f"{path}:6"]["reason_code"] == "undecodable"
    assert dead_letters[f"{path}:3"]["reason"].startswith(f"{path}:3 code: 'TELEPORTED'")
    both = dead_letters[f"{path}:5"]["reason"]
    assert f"{path}:5 event_time:" in both and f"{path}:5 source:" in both
    assert all(d["stage"] == "producer" for d in dead_letters.values())
    assert counter("parcelstream_dead_letters_total", stage="producer", reason_code="unknown_code") == (
        dead_letters_before + 1
    )


def test_unreadable_csv_header_dead_letters_the_whole_file(
    tmp_path: Path, publisher: Publisher, topics: TopicNames, read_topic: Callable[[str, int], list[ReadMessage]]
) -> None:
    path = tmp_path / "feed.csv"
    path.write_text("event_id,colour\ne1,red\n")
    summary = publish_files([path], None, publisher, flush_timeout=25)
    assert summary.exit_code == 2
    assert summary.published == {}
    [dead_letter] = read_topic(topics.dead_letters, 1)
    assert dead_letter.decoded.value["reason_code"] == "unreadable_document"
    assert dead_letter.decoded.value["payload"] == path.read_bytes()
    assert "colour" in dead_letter.decoded.value["reason"]


def test_unacknowledged_records_are_failures_with_their_references(tmp_path: Path) -> None:
    path = tmp_path / "scans.jsonl"
    path.write_text(
        scan("e1", tracking_number="LP000000001CN") + "\n" + scan("e2", tracking_number="LP000000002CN") + "\n"
    )
    nowhere = Publisher(
        f"127.0.0.1:{free_port()}", TopicNames("nowhere"), **{"message.timeout.ms": 1000, "log_level": 0}
    )
    timeouts_before = counter("parcelstream_publish_failures_total", reason_code="message_timeout")
    published_before = counter("parcelstream_scans_published_total", source="flight", code="LINEHAUL_DEPARTED")

    summary = publish_files([path], None, nowhere, flush_timeout=15)

    assert summary.exit_code == 1
    assert sorted(f.reference for f in summary.failures) == [f"{path}:1", f"{path}:2"]
    assert summary.published == {}
    assert counter("parcelstream_publish_failures_total", reason_code="message_timeout") == timeouts_before + 2
    assert counter("parcelstream_scans_published_total", source="flight", code="LINEHAUL_DEPARTED") == published_before


def test_setup_problems_are_found_before_publishing(tmp_path: Path, bootstrap_servers: str) -> None:
    unknown_extension = tmp_path / "scans.txt"
    unknown_extension.write_text("")
    nowhere = Publisher(f"127.0.0.1:{free_port()}", TopicNames("nowhere"), log_level=0)
    with pytest.raises(PublishSetupError, match="pass --format"):
        publish_files([unknown_extension], None, nowhere)
    with pytest.raises(PublishSetupError, match="no such file"):
        publish_files([tmp_path / "missing.jsonl"], None, nowhere)
    with pytest.raises(PublishSetupError, match="do not exist"):
        check_broker(bootstrap_servers, TopicNames("no-such-prefix"), timeout=10)


def _iso_days_from_now(days: float) -> str:
    moment = datetime.now(UTC) + timedelta(days=days)
    return moment.isoformat(timespec="seconds")


def test_event_time_out_of_range_is_dead_lettered_with_its_reason(
    tmp_path: Path, publisher: Publisher, topics: TopicNames, read_topic: Callable[[str, int], list[ReadMessage]]
) -> None:
    path = tmp_path / "times.jsonl"
    lines = [
        scan("t1", tracking_number="LP000000001CN", event_time=_iso_days_from_now(-1)),
        scan("t2", tracking_number="LP000000002CN", event_time="2100-01-01T00:00:00Z"),  # fires every deadline
        scan("t3", tracking_number="LP000000003CN", event_time="1971-01-01T00:00:00Z"),  # wins "earliest"
        scan("t4", tracking_number="LP000000004CN", event_time=_iso_days_from_now(2)),  # beyond --max-future
    ]
    path.write_text("\n".join(lines) + "\n")

    summary = publish_files([path], "jsonl", publisher, flush_timeout=25, event_times=EventTimeSettings())

    assert summary.exit_code == 2
    assert summary.published == {topics.scans: 1}
    assert [m.decoded.value["event_id"] for m in read_topic(topics.scans, 1)] == ["t1"]
    dead_letters = {m.decoded.value["source_reference"]: m.decoded.value for m in read_topic(topics.dead_letters, 3)}
    assert set(dead_letters) == {f"{path}:2", f"{path}:3", f"{path}:4"}
    assert {d["reason_code"] for d in dead_letters.values()} == {"event_time_out_of_range"}
    assert "later than now" in dead_letters[f"{path}:2"]["reason"]
    assert "PARCELSTREAM_MAX_AGE" in dead_letters[f"{path}:3"]["reason"]
    assert json.loads(dead_letters[f"{path}:2"]["payload"])["event_id"] == "t2"


def test_event_time_bounds_are_settings(tmp_path: Path, publisher: Publisher, topics: TopicNames) -> None:
    path = tmp_path / "times.jsonl"
    path.write_text(scan("t5", tracking_number="LP000000005CN", event_time=_iso_days_from_now(2)) + "\n")
    wider = EventTimeSettings(max_future=3 * 86400)
    summary = publish_files([path], "jsonl", publisher, flush_timeout=25, event_times=wider)
    assert summary.exit_code == 0
    assert summary.published == {topics.scans: 1}


def test_recursion_deep_json_line_is_dead_lettered_not_a_crash(
    tmp_path: Path, publisher: Publisher, topics: TopicNames, read_topic: Callable[[str, int], list[ReadMessage]]
) -> None:
    path = tmp_path / "deep.jsonl"
    deep = '{"event_id": ' + "[" * 100_000 + "]" * 100_000 + "}"
    path.write_text(deep + "\n" + scan("d1", tracking_number="LP000000006CN", event_time=_iso_days_from_now(0)) + "\n")

    summary = publish_files([path], "jsonl", publisher, flush_timeout=25)

    assert summary.exit_code == 2
    assert summary.published == {topics.scans: 1}
    (dead_letter,) = [m.decoded.value for m in read_topic(topics.dead_letters, 1)]
    assert dead_letter["reason_code"] == "too_deep"
    assert dead_letter["source_reference"] == f"{path}:1"
