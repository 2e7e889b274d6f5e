"""Cargo-IMP FSU parser on messages laid out like the IATA Cargo-IMP manual's FSU examples
(Chapter 7, FSU: AWB consignment detail line, then status lines BKD/RCS/MAN/DEP/ARR/RCF/DIS/NFD/
AWD/CCD/DLV with flight, day/time, airports and pieces/weight; part shipments with P pieces)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from producers.formats import FormatError, parser_for
from producers.formats.iata_fsu import parse

REFERENCE_MS = int(datetime(2024, 11, 30, tzinfo=ZoneInfo("UTC")).timestamp() * 1000)


def ms(year: int, month: int, day: int, hour: int, minute: int, zone: str) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone)).timestamp() * 1000)


def test_split_shipment_messages(fixture_bytes: Callable[[str], bytes]) -> None:
    result = parse(fixture_bytes("iata_fsu_split_shipment.fsu"), "lh.fsu", reference_time_ms=REFERENCE_MS)
    assert result.issues == []
    scans = [record.value for record in result.records]
    assert [s["raw_code"] for s in scans] == [
        "BKD", "RCS", "MAN", "DEP", "ARR", "RCF", "DIS", "DEP", "ARR", "NFD", "AWD", "CCD", "DLV",
    ]  # fmt: skip
    assert {s["handling_unit"] for s in scans[:7]} == {"020-12345675"}
    assert all(s["tracking_number"] is None and s["raw_format"] == "iata-fsu" for s in scans)
    assert all(s["references"]["awb"] == s["handling_unit"] for s in scans)

    departure = scans[3]
    assert departure["code"] == "LINEHAUL_DEPARTED"
    assert departure["references"]["flight_number"] == "LH400"
    assert departure["location"]["code"] == "FRA"
    assert departure["event_time_ms"] == ms(2024, 10, 16, 14, 30, "Europe/Berlin")
    assert departure["utc_offset_minutes"] == 120
    assert departure["reason"] == "part shipment: 5 of 10 pieces, 125 K"

    arrival = scans[4]
    assert arrival["location"]["code"] == "JFK"
    assert arrival["event_time_ms"] == ms(2024, 10, 16, 17, 15, "America/New_York")
    assert arrival["utc_offset_minutes"] == -240
    assert "discrepancy MSCA" in (scans[6]["reason"] or "")

    lgg = scans[7:]
    assert {s["handling_unit"] for s in lgg} == {"157-12345675"}
    assert lgg[0]["location"]["code"] == "HGH"  # departure airport of the pair
    assert lgg[0]["event_time_ms"] == ms(2024, 10, 20, 2, 15, "Asia/Shanghai")
    assert lgg[-1]["code"] == "CARRIER_INFORMATION"  # DLV: delivered to the consignee, not always the hub
    assert lgg[-1]["location"] == {"code": "LGG", "kind": "airport", "country": "BE", "name": "Liege Airport"}


def test_event_ids_are_deterministic_and_distinct(fixture_bytes: Callable[[str], bytes]) -> None:
    data = fixture_bytes("iata_fsu_split_shipment.fsu")
    first = [r.value["event_id"] for r in parse(data, "a.fsu", reference_time_ms=REFERENCE_MS).records]
    again = [r.value["event_id"] for r in parse(data, "resent.fsu", reference_time_ms=REFERENCE_MS).records]
    assert first == again
    assert len(set(first)) == len(first)


def test_year_is_the_one_nearest_the_reference_time() -> None:
    message = b"FSU/14\n020-12345675FRAJFK/T1K10\nRCS/30DEC0900/FRA/T1K10\n"
    january = int(datetime(2025, 1, 2, tzinfo=ZoneInfo("UTC")).timestamp() * 1000)
    (record,) = parse(message, "x.fsu", reference_time_ms=january).records
    assert record.value["event_time_ms"] == ms(2024, 12, 30, 9, 0, "Europe/Berlin")


def test_errors_name_message_line_and_field() -> None:
    data = (
        b"FSU/14\n020-12345676FRAJFK/T1K10\nDEP/LH400/16OCT/FRAJFK/T1K10\n"  # bad check digit
        b"FSU/14\n020-12345675FRAJFK/T1K10\n"
        b"ZZZ/LH400/16OCT/FRAJFK/T1K10\n"  # unknown status code
        b"DEP/LH400/FRAJFK/T1K10\n"  # no day
        b"ARR/LH400/16OCT/XXX/T1K10\n"  # airport without a known time zone
        b"RCS/31FEB0900/FRA/T1K10\n"  # no such day
        b"not a status line\n"
    )
    result = parse(data, "bad.fsu", reference_time_ms=REFERENCE_MS)
    assert result.records == []
    found = [(i.reference, i.field, i.reason_code) for i in result.issues]
    assert found == [
        ("bad.fsu:2 (FSU message 1)", "awb", "malformed_record"),
        ("bad.fsu:6 (FSU message 2)", "status[0].code", "unknown_code"),
        ("bad.fsu:7 (FSU message 2)", "status[1].day", "malformed_record"),
        ("bad.fsu:8 (FSU message 2)", "status[2].airport", "unknown_location"),
        ("bad.fsu:9 (FSU message 2)", "status[3].day", "malformed_record"),
        ("bad.fsu:10 (FSU message 2)", "status", "malformed_record"),
    ]
    assert "mod-7" in result.issues[0].message
    assert result.issues[1].raw == b"ZZZ/LH400/16OCT/FRAJFK/T1K10"


def test_a_file_without_fsu_header_is_unreadable() -> None:
    with pytest.raises(FormatError, match="FSU/nn"):
        parser_for("fsu")(b"020-12345675FRAJFK/T1K10\n", "x.txt")
