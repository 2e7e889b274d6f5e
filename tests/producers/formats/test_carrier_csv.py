"""Last-mile carrier CSV parser on the layout docs/formats.md defines."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from producers.formats import FormatError, parser_for
from producers.formats.identifiers import parse_timestamp


def test_feed(fixture_bytes: Callable[[str], bytes]) -> None:
    result = parser_for("carrier-csv")(fixture_bytes("carrier_lastmile.csv"), "bpost.csv")
    assert result.issues == []
    scans = [r.value for r in result.records]
    assert [s["code"] for s in scans] == [
        "LASTMILE_HANDOVER",
        "OUT_FOR_DELIVERY",
        "DELIVERY_ATTEMPT_FAILED",
        "DELIVERED",
    ]
    assert scans[1]["raw_code"] == "OUT_FOR_DELIVERY"  # status words are case-insensitive
    assert scans[2]["reason"] == "Recipient absent; card left"
    assert scans[2]["event_time_ms"] == parse_timestamp("2024-10-22T09:45:00Z").epoch_ms
    assert all(s["source"] == "lastmile" and s["carrier"] == "BPOST" for s in scans)
    assert scans[0]["location"]["code"] == "LGG-HUB-1"


def test_errors_name_line_and_field() -> None:
    data = (
        b"status,tracking_number,event_time,carrier\n"
        b"TELEPORTED,LP00123456789CN,2024-10-22T08:10:00+02:00,GLS\n"
        b"DELIVERED,RR123456784CN,2024-10-22T08:10:00+02:00,GLS\n"
        b"DELIVERED,LP00123456789CN,2024-10-22T08:10:00,GLS\n"
        b"DELIVERED,LP00123456789CN,2024-10-22T08:10:00+02:00,\n"
        b"DELIVERED,x,2024-10-22T08:10:00+02:00,GLS\n"
    )
    result = parser_for("carrier-csv")(data, "gls.csv")
    assert result.records == []
    assert [(i.reference, i.field, i.reason_code) for i in result.issues] == [
        ("gls.csv:2", "status", "unknown_code"),
        ("gls.csv:3", "tracking_number", "malformed_record"),
        ("gls.csv:4", "event_time", "malformed_record"),
        ("gls.csv:5", "carrier", "malformed_record"),
        ("gls.csv:6", "tracking_number", "malformed_record"),
    ]


def test_carrier_option_fills_a_missing_column() -> None:
    data = b"tracking_number,status,event_time\nLP00123456789CN,AT_PICKUP_POINT,2024-10-22T08:10:00+02:00\n"
    (record,) = parser_for("carrier-csv")(data, "x.csv", carrier="DPD").records
    assert record.value["carrier"] == "DPD"
    assert record.value["code"] == "AVAILABLE_FOR_PICKUP"


def test_missing_columns_make_the_file_unreadable() -> None:
    with pytest.raises(FormatError, match="event_time"):
        parser_for("carrier-csv")(b"tracking_number,status\nA1234,DELIVERED\n", "x.csv")
