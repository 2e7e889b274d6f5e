"""The native JSON Lines / CSV parsers: good lines become records, every bad line an issue naming its
line and field, and no input makes a parser raise."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from producers.formats import FormatError, parser_for
from producers.formats.native import parse_csv, parse_jsonl
from schemas.codec import default_codec

GOOD_SCAN: dict[str, Any] = {
    "event_id": "CK-0001",
    "tracking_number": "LP00123456789CN",
    "source": "flight",
    "code": "LINEHAUL_DEPARTED",
    "raw_code": "DEP",
    "raw_format": "iata-fsu",
    "carrier": "CK",
    "event_time": "2026-11-20T08:15:00+08:00",
    "recorded_time": "2026-11-20T01:20:30Z",
    "location": {"code": "HGH", "kind": "airport", "country": "CN", "name": "Hangzhou"},
    "awb": "157-12345675",
    "flight_number": "CK261",
    "reason": None,
}
GOOD_MANIFEST: dict[str, Any] = {
    "type": "manifest",
    "manifest_id": "M-BAG-7",
    "handling_unit": "BAG-7",
    "unit_type": "bag",
    "members": ["LP00123456789CN", "LP00123456790CN"],
    "member_type": "parcel",
    "carrier": "CK",
    "source": "warehouse",
    "event_time": "2026-11-20T06:00:00+08:00",
    "references": {"awb": "157-12345675"},
}


def ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)


def jsonl(*records: dict[str, Any] | str) -> bytes:
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in records).encode()


def test_scan_line_becomes_a_valid_scan_event() -> None:
    result = parse_jsonl(jsonl(GOOD_SCAN), "scans.jsonl")
    assert result.issues == []
    [record] = result.records
    assert record.kind == "scan"
    assert record.reference == "scans.jsonl:1"
    scan = record.value
    assert scan["event_time_ms"] == ms(2026, 11, 20, 0, 15)
    assert scan["utc_offset_minutes"] == 480
    assert scan["recorded_time_ms"] == ms(2026, 11, 20, 1, 20, 30)
    assert scan["location"] == {"code": "HGH", "kind": "airport", "country": "CN", "name": "Hangzhou"}
    assert scan["references"]["awb"] == "157-12345675"
    assert scan["references"]["flight_number"] == "CK261"
    assert scan["references"]["uld"] is None
    assert (scan["raw_code"], scan["raw_format"]) == ("DEP", "iata-fsu")
    assert default_codec().validate("ScanEvent", scan) == []


def test_defaults_for_optional_fields() -> None:
    minimal = {
        "event_id": "e1",
        "handling_unit": "AKE12345CK",
        "source": "warehouse",
        "code": "HUB_RECEIVED",
        "carrier": "LGGHUB",
        "event_time": "2026-11-21T10:00:00+01:00",
        "location": "LGG-HUB-1",
        "references": {"uld": "AKE12345CK"},
    }
    [record] = parse_jsonl(jsonl(minimal), "f.jsonl").records
    scan = record.value
    assert scan["tracking_number"] is None
    assert scan["raw_code"] == "HUB_RECEIVED"
    assert scan["raw_format"] == "parcelstream-json"
    assert scan["recorded_time_ms"] == scan["event_time_ms"] == ms(2026, 11, 21, 9, 0)
    assert scan["utc_offset_minutes"] == 60
    assert scan["location"] == {"code": "LGG-HUB-1", "kind": "facility", "country": None, "name": None}
    assert scan["references"]["uld"] == "AKE12345CK"


def test_shipment_on_order_created() -> None:
    order = {
        "event_id": "o1",
        "tracking_number": "LP000000001CN",
        "source": "warehouse",
        "code": "ORDER_CREATED",
        "carrier": "CAINIAO",
        "event_time": "2026-11-11T00:05:00+08:00",
        "shipment": {
            "service_level": "express",
            "origin_country": "CN",
            "destination_country": "BE",
            "destination_postcode": "4000",
        },
    }
    [record] = parse_jsonl(jsonl(order), "f.jsonl").records
    assert record.value["shipment"] == {
        "service_level": "express",
        "flow": "import",
        "origin_country": "CN",
        "destination_country": "BE",
        "destination_postcode": "4000",
        "merchant": None,
        "ordered_time_ms": ms(2026, 11, 10, 16, 5),
    }


def test_manifest_line() -> None:
    result = parse_jsonl(jsonl(GOOD_MANIFEST), "m.jsonl")
    assert result.issues == []
    [record] = result.records
    assert record.kind == "manifest"
    assert record.value["members"] == ["LP00123456789CN", "LP00123456790CN"]
    assert record.value["action"] == "add"
    assert record.value["event_time_ms"] == record.value["recorded_time_ms"] == ms(2026, 11, 19, 22, 0)
    assert record.value["references"]["awb"] == "157-12345675"
    assert default_codec().validate("Manifest", record.value) == []


def _with(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    record = {**base, **changes}
    return {key: value for key, value in record.items() if value is not ...}


BAD_LINES: list[tuple[str, bytes | str | dict[str, Any], str, str]] = [
    ("invalid JSON", '{"event_id": "e1", ', "(line)", "malformed_record"),
    ("not an object", "[1, 2]", "(line)", "malformed_record"),
    ("invalid UTF-8", b'{"event_id": "\xff\xfe"}', "(line)", "undecodable"),
    ("unknown type", _with(GOOD_SCAN, type="parcel"), "type", "malformed_record"),
    ("missing event_id", _with(GOOD_SCAN, event_id=...), "event_id", "malformed_record"),
    ("event_id not a string", _with(GOOD_SCAN, event_id=17), "event_id", "malformed_record"),
    ("unknown code", _with(GOOD_SCAN, code="TELEPORTED"), "code", "unknown_code"),
    ("unknown source", _with(GOOD_SCAN, source="drone"), "source", "malformed_record"),
    ("no parcel or unit", _with(GOOD_SCAN, tracking_number=...), "tracking_number", "malformed_record"),
    ("time without offset", _with(GOOD_SCAN, event_time="2026-11-20T08:15:00"), "event_time", "malformed_record"),
    ("time not a time", _with(GOOD_SCAN, recorded_time="yesterday"), "recorded_time", "malformed_record"),
    ("unknown location kind", _with(GOOD_SCAN, location={"code": "LGG", "kind": "moon"}), "location.kind", ""),
    ("bad country", _with(GOOD_SCAN, location={"code": "LGG", "country": "Belgium"}), "location.country", ""),
    ("unknown raw format", _with(GOOD_SCAN, raw_format="telex"), "raw_format", "malformed_record"),
    ("misspelt field", _with(GOOD_SCAN, tracking_numbr="LP000000001CN"), "tracking_numbr", "malformed_record"),
    ("conflicting reference", _with(GOOD_SCAN, references={"awb": "020-12345675"}), "awb", "malformed_record"),
    ("manifest without members", _with(GOOD_MANIFEST, members=[]), "members", "malformed_record"),
    (
        "manifest member not a string",
        _with(GOOD_MANIFEST, members=["LP000000001CN", 5]),
        "members[1]",
        "malformed_record",
    ),
    ("manifest unit type", _with(GOOD_MANIFEST, unit_type="box"), "unit_type", "malformed_record"),
]


@pytest.mark.parametrize(
    ("bad_line", "field", "reason_code"), [case[1:] for case in BAD_LINES], ids=[c[0] for c in BAD_LINES]
)
def test_bad_line_is_an_issue_with_line_and_field(
    bad_line: bytes | str | dict[str, Any], field: str, reason_code: str
) -> None:
    raw = (
        bad_line
        if isinstance(bad_line, bytes)
        else (bad_line if isinstance(bad_line, str) else json.dumps(bad_line)).encode()
    )
    data = jsonl(GOOD_SCAN, "") + b"\n" + raw + b"\n" + jsonl(GOOD_MANIFEST)
    result = parse_jsonl(data, "mixed.jsonl")
    assert [r.reference for r in result.records] == ["mixed.jsonl:1", "mixed.jsonl:4"]
    assert [issue.field for issue in result.issues] == [field]
    [issue] = result.issues
    assert issue.reference == "mixed.jsonl:3"
    assert issue.raw == raw
    assert issue.message
    if reason_code:
        assert issue.reason_code == reason_code


def test_every_problem_of_a_line_is_reported() -> None:
    bad = _with(GOOD_SCAN, event_id=..., code="NOPE", event_time="soon")
    result = parse_jsonl(jsonl(bad), "f.jsonl")
    assert result.records == []
    assert {issue.field for issue in result.issues} == {"event_id", "code", "event_time"}
    assert {issue.reference for issue in result.issues} == {"f.jsonl:1"}


def test_carrier_must_match_when_given() -> None:
    other = _with(GOOD_SCAN, event_id="e2", carrier="DHL")
    result = parse_jsonl(jsonl(GOOD_SCAN, other), "f.jsonl", carrier="CK")
    assert [r.reference for r in result.records] == ["f.jsonl:1"]
    [issue] = result.issues
    assert (issue.reference, issue.field, issue.reason_code) == ("f.jsonl:2", "carrier", "carrier_mismatch")
    assert "DHL" in issue.message and "CK" in issue.message


def test_crlf_line_endings_and_byte_order_mark() -> None:
    data = b"\xef\xbb\xbf" + jsonl(GOOD_SCAN, GOOD_MANIFEST).replace(b"\n", b"\r\n") + b"\r\n"
    result = parse_jsonl(data, "win.jsonl")
    assert result.issues == []
    assert [r.kind for r in result.records] == ["scan", "manifest"]


CSV_HEADER = (
    "type,event_id,tracking_number,handling_unit,source,code,carrier,event_time,location_code,location_kind,"
    "location_country,awb,manifest_id,unit_type,members,member_type"
)


def test_csv_scans_and_manifests() -> None:
    data = "\n".join(
        [
            CSV_HEADER,
            "scan,CK-1,LP000000001CN,,flight,LINEHAUL_DEPARTED,CK,2026-11-20T08:15:00+08:00,HGH,airport,CN,157-12345675,,,,",
            ",CK-2,,AKE12345CK,flight,LINEHAUL_ARRIVED,CK,2026-11-20T14:00:00+01:00,LGG,airport,BE,,,,,",
            "manifest,,,BAG-7,warehouse,,CK,2026-11-20T06:00:00+08:00,,,,,M-7,bag,"
            "LP000000001CN | LP000000002CN|LP000000003CN,parcel",
        ]
    ).encode()
    result = parse_csv(data, "feed.csv")
    assert result.issues == []
    scan, unit_scan, manifest = result.records
    assert scan.reference == "feed.csv:2"
    assert scan.value["location"] == {"code": "HGH", "kind": "airport", "country": "CN", "name": None}
    assert scan.value["references"]["awb"] == "157-12345675"
    assert scan.value["event_time_ms"] == ms(2026, 11, 20, 0, 15)
    assert unit_scan.value["handling_unit"] == "AKE12345CK"
    assert unit_scan.value["tracking_number"] is None
    assert manifest.kind == "manifest"
    assert manifest.value["members"] == ["LP000000001CN", "LP000000002CN", "LP000000003CN"]
    assert manifest.reference == "feed.csv:4"


def test_csv_bad_rows_name_the_column() -> None:
    data = "\n".join(
        [
            CSV_HEADER,
            "scan,CK-1,LP000000001CN,,flight,LINEHAUL_DEPARTED,CK,2026-11-20T08:15:00+08:00,LGG,moon,BE,,,,,",
            "scan,CK-2,LP000000002CN,,flight",
            "manifest,,,BAG-7,warehouse,,CK,2026-11-20T06:00:00+08:00,,,,,M-7,bag,,parcel",
        ]
    ).encode()
    result = parse_csv(data, "feed.csv")
    assert result.records == []
    assert [(i.reference, i.field) for i in result.issues] == [
        ("feed.csv:2", "location_kind"),
        ("feed.csv:3", "(line)"),
        ("feed.csv:4", "members"),
    ]
    assert "5 cells" in result.issues[1].message


def test_csv_unknown_column_makes_the_file_unreadable() -> None:
    with pytest.raises(FormatError, match="'colour'"):
        parse_csv(b"event_id,colour\ne1,red\n", "feed.csv")


def test_examples_in_docs_parse() -> None:
    text = (Path(__file__).parents[3] / "docs" / "formats.md").read_text()
    section = text.split("## parcelstream JSON Lines / CSV", 1)[1].split("\n## ", 1)[0]
    json_examples = [block.split("\n", 1)[1] for block in section.split("```json")[1:]]
    csv_example = section.split("```csv\n")[1].split("```")[0]
    lines = [example.split("```")[0].strip() for example in json_examples]
    jsonl_result = parse_jsonl("\n".join(lines).encode(), "docs.jsonl")
    csv_result = parse_csv(csv_example.encode(), "docs.csv")
    assert jsonl_result.issues == [] and csv_result.issues == []
    assert [r.kind for r in jsonl_result.records] == ["scan", "manifest"]
    assert [r.kind for r in csv_result.records] == ["scan", "manifest"]


def test_parser_lookup() -> None:
    assert parser_for("jsonl") is parse_jsonl
    assert parser_for("csv") is parse_csv


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=60), st.text(max_size=60).map(str.encode)), max_size=6))
def test_any_input_is_accounted_for_line_by_line(lines: list[bytes]) -> None:
    data = b"\n".join(line.replace(b"\n", b" ") for line in lines)
    for parse in (parse_jsonl, parse_csv):
        try:
            result = parse(data, "fuzz")
        except FormatError:
            assert parse is parse_csv  # only a CSV header can make a whole file unreadable
            continue
        accounted = {r.reference for r in result.records} | {i.reference for i in result.issues}
        unmarked = data.removeprefix(b"\xef\xbb\xbf")  # a leading byte order mark is not content
        non_blank = {f"fuzz:{n}" for n, line in enumerate(unmarked.split(b"\n"), 1) if line.strip()}
        if parse is parse_csv:
            non_blank -= {min(non_blank, key=lambda ref: int(ref.split(":")[1]))} if non_blank else set()
        assert accounted == non_blank
