"""EMSEVT v3 parser on a parcel's journey coded as in UPU standard M40 / the EMSEVT v3 code list
(EMA posting, EMC departure from outward office of exchange, EMD arrival at inward office, EME
held by customs with a retention reason, EMH unsuccessful delivery with reason and action codes,
EMI final delivery), in the flat CSV / JSON rendering docs/formats.md defines."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from producers.formats import FormatError
from producers.formats.identifiers import parse_timestamp
from producers.formats.upu_emsevt import parse


def test_csv_journey(fixture_bytes: Callable[[str], bytes]) -> None:
    result = parse(fixture_bytes("upu_emsevt.csv"), "cnpost.csv")
    assert result.issues == []
    scans = [r.value for r in result.records]
    assert [s["raw_code"] for s in scans] == ["EMA", "EMC", "EMD", "EME", "EMH", "EMI"]
    assert [s["code"] for s in scans] == [
        "ORIGIN_RECEIVED",
        "LINEHAUL_DEPARTED",
        "LINEHAUL_ARRIVED",
        "IMPORT_CUSTOMS_HELD",
        "DELIVERY_ATTEMPT_FAILED",
        "DELIVERED",
    ]
    assert [s["source"] for s in scans] == ["warehouse", "flight", "flight", "customs", "lastmile", "lastmile"]
    assert {s["tracking_number"] for s in scans} == {"RR123456785CN"}
    assert scans[0]["event_time_ms"] == parse_timestamp("2024-10-14T01:12:00Z").epoch_ms
    assert scans[0]["utc_offset_minutes"] == 480
    assert scans[2]["location"] == {"code": "BELGGA", "kind": "facility", "country": "BE", "name": None}
    assert scans[3]["reason"] == "reason 12"
    assert scans[4]["reason"] == "reason 11; action A"
    assert scans[0]["carrier"] == "UPU-CN"
    assert len({s["event_id"] for s in scans}) == 6
    assert [r.reference for r in result.records][:2] == ["cnpost.csv:2", "cnpost.csv:3"]


def test_json_array_and_json_lines_give_the_same_events(fixture_bytes: Callable[[str], bytes]) -> None:
    array = fixture_bytes("upu_emsevt.json")
    lines = b"\n".join(json.dumps(item).encode() for item in json.loads(array))
    from_array, from_lines = parse(array, "a.json"), parse(lines, "a.jsonl")
    assert from_array.issues == from_lines.issues == []
    assert [r.value for r in from_array.records] == [
        {**r.value, "recorded_time_ms": a.value["recorded_time_ms"]}
        for r, a in zip(from_lines.records, from_array.records, strict=True)
    ]
    assert from_array.records[1].value["carrier"] == "CNPOST"
    assert from_array.records[1].value["code"] == "TRANSIT_ARRIVED"


def test_errors_name_line_and_field() -> None:
    data = (
        b"mail_item_id,event_code,event_time,office_code,reason_code,action_code\n"
        b"RR123456784CN,EMA,2024-10-14T09:12:00+08:00,CNHGHA,,\n"
        b"RR123456785CN,EMZ,2024-10-14T09:12:00+08:00,CNHGHA,,\n"
        b"RR123456785CN,EMA,2024-10-14 09:12,CNHGHA,,\n"
        b"RR123456785CN,EMH,2024-10-18T11:20:00+02:00,BE4000,11,\n"
        b"RR123456785CN,EME,2024-10-18T11:20:00+02:00,BELGGA,,\n"
        b"RR123456785CN,EMA,2024-10-14T09:12:00+08:00,?,,\n"
        b",EMA,2024-10-14T09:12:00+08:00,CNHGHA,,\n"
        b"RR123456785CN,EMA,2024-10-14T09:12:00+08:00,CNHGHA,,,surplus\n"
    )
    result = parse(data, "bad.csv")
    assert result.records == []
    assert [(i.reference, i.field, i.reason_code) for i in result.issues] == [
        ("bad.csv:2", "mail_item_id", "malformed_record"),
        ("bad.csv:3", "event_code", "unknown_code"),
        ("bad.csv:4", "event_time", "malformed_record"),
        ("bad.csv:5", "action_code", "malformed_record"),
        ("bad.csv:6", "reason_code", "malformed_record"),
        ("bad.csv:7", "office_code", "malformed_record"),
        ("bad.csv:8", "mail_item_id", "malformed_record"),
        ("bad.csv:9", "", "malformed_record"),
    ]
    assert "check digit" in result.issues[0].message
    assert result.issues[1].raw == b"RR123456785CN,EMZ,2024-10-14T09:12:00+08:00,CNHGHA,,"


def test_json_item_paths() -> None:
    items = [{"mail_item_id": "RR123456785CN", "event_code": "EMI", "event_time": "bad", "office_code": "BE4000"}, 7]
    result = parse(json.dumps(items).encode(), "x.json")
    assert [(i.reference, i.field) for i in result.issues] == [
        ("x.json item 1", "[0].event_time"),
        ("x.json item 2", "[1]"),
    ]


@pytest.mark.parametrize("document", [b"", b"a,b\n1,2\n", b"{broken"])
def test_unreadable_documents(document: bytes) -> None:
    with pytest.raises(FormatError):
        parse(document, "x")
