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


# --- issue 19: constructs of real FSU messages --------------------------------------------------

NOV_30_2026 = int(datetime(2026, 11, 30, 12, 0, tzinfo=ZoneInfo("UTC")).timestamp() * 1000)


def test_oci_and_uld_lines_are_not_status_lines() -> None:
    message = (
        b"FSU/14\n157-33806275DOHLGG/T12K612.5\nRCS/28NOV0640/DOH/T12K612.5\n"
        b"OCI/QA/ISS/RA/40112\n/QA//SM/XRY\nULD/PMC61204QR/AKE55310QR\nOSI/MAIN DECK\n"
    )
    result = parse(message, "x.fsu", reference_time_ms=NOV_30_2026)
    assert result.issues == []
    assert [r.value["raw_code"] for r in result.records] == ["RCS"]


def test_type_b_envelope_with_control_characters_and_origin_line() -> None:
    message = (
        b"\x01QK LGGFMCV BRUKKCK\r\n.HGHFMCK 291830\r\n\x02FSU/14\r\n160-88001233HGHLGG/T40K812\r\n"
        b"DEP/CK261/29NOV1805/HGHLGG/T40K812\r\n\x03\x01QK LGGFMCV\r\nLGGKKCV\r\n.HGHFMCK 300205\r\n\x02FSU/14\r\n"
        b"160-88001233HGHLGG/T40K812\r\nARR/CK261/30NOV0150/LGG/T40K812\r\n\x03"
    )
    result = parse(message, "x.fsu", reference_time_ms=NOV_30_2026)
    assert result.issues == []
    assert [(r.value["raw_code"], r.value["location"]["code"]) for r in result.records] == [
        ("DEP", "HGH"),
        ("ARR", "LGG"),
    ]


def test_a_day_without_year_is_never_after_the_time_the_message_is_read() -> None:
    # A delivery on 23MAR read on 30 Nov happened this March, not next March.
    message = b"FSU/14\n297-90817263PVGLGG/T5K70\nRCF/23MAR1100/LGG/T5K70\n"
    (record,) = parse(message, "x.fsu", reference_time_ms=NOV_30_2026).records
    assert record.value["event_time_ms"] == ms(2026, 3, 23, 11, 0, "Europe/Brussels")
    # Later the same day of reading: the day before a year ago is not chosen either.
    (today,) = parse(message.replace(b"23MAR", b"30NOV"), "x.fsu", reference_time_ms=NOV_30_2026).records
    assert today.value["event_time_ms"] == ms(2026, 11, 30, 11, 0, "Europe/Brussels")


def test_the_envelope_time_bounds_the_year_too() -> None:
    # Sent on 2 Jan 10:00 UTC (origin line), read on 5 Jan: a 31DEC arrival is of the year before,
    # and a 03JAN one cannot be in the message sent on 2 Jan, so it is of the year before too.
    envelope = b"QK LGGFMCV\n.PVGFMCI 021000\nFSU/14\n297-90817263PVGLGG/T5K70\n"
    read_at = int(datetime(2027, 1, 5, 11, 0, tzinfo=ZoneInfo("UTC")).timestamp() * 1000)
    december, january = parse(
        envelope + b"ARR/CI5841/31DEC2210/LGG/T5K70\nRCF/03JAN0800/LGG/T5K70\n", "x.fsu", reference_time_ms=read_at
    ).records
    assert december.value["event_time_ms"] == ms(2026, 12, 31, 22, 10, "Europe/Brussels")
    assert january.value["event_time_ms"] == ms(2026, 1, 3, 8, 0, "Europe/Brussels")
    # Without the envelope only the read time bounds it: this January.
    (unbounded,) = parse(
        b"FSU/14\n297-90817263PVGLGG/T5K70\nRCF/03JAN0800/LGG/T5K70\n", "x.fsu", reference_time_ms=read_at
    ).records
    assert unbounded.value["event_time_ms"] == ms(2027, 1, 3, 8, 0, "Europe/Brussels")


def test_a_booking_may_be_for_a_flight_ahead() -> None:
    message = b"FSU/14\n176-40718204HELNCE/T6K88.4\nBKD/AY/1579/02DEC/HEL/NCE/T6K88.4\n"
    (record,) = parse(message, "x.fsu", reference_time_ms=NOV_30_2026).records
    assert record.value["event_time_ms"] == ms(2026, 12, 2, 0, 0, "Europe/Helsinki")
    assert record.value["references"]["flight_number"] == "AY1579"


@pytest.mark.parametrize(("airport", "zone"), [("BSL", "Europe/Paris"), ("HEL", "Europe/Helsinki"),
                                               ("ARN", "Europe/Stockholm"), ("NCE", "Europe/Paris"),
                                               ("BHX", "Europe/London")])  # fmt: skip
def test_airports_beyond_the_former_table(airport: str, zone: str) -> None:
    message = f"FSU/14\n020-61123451/T3K45\nRCS/27NOV1039/{airport}/T3K45\n".encode()
    (record,) = parse(message, "x.fsu", reference_time_ms=NOV_30_2026).records
    assert record.value["location"]["code"] == airport
    assert record.value["event_time_ms"] == ms(2026, 11, 27, 10, 39, zone)


@pytest.mark.parametrize(
    ("raw_code", "code"),
    [("PRE", "LINEHAUL_MANIFESTED"), ("TRM", "TRANSIT_ARRIVED"), ("CRC", "IMPORT_CUSTOMS_PRESENTED"),
     ("TGC", "IMPORT_CUSTOMS_PRESENTED"), ("DDL", "CARRIER_INFORMATION"), ("AWR", "CARRIER_INFORMATION"),
     ("FIW", "CARRIER_INFORMATION"), ("FOW", "CARRIER_INFORMATION"),
     # arrival documents delivered is not a customs step; a delivery to the consignee is not the hub's receipt
     ("AWD", "CARRIER_INFORMATION"), ("DLV", "CARRIER_INFORMATION")],
)  # fmt: skip
def test_every_cargo_imp_status_code_is_mapped(raw_code: str, code: str) -> None:
    message = f"FSU/14\n157-33806275DOHLGG/T12K612\n{raw_code}/28NOV0640/LGG/T12K612\n".encode()
    result = parse(message, "x.fsu", reference_time_ms=NOV_30_2026)
    assert [(r.value["raw_code"], r.value["code"]) for r in result.records] == [(raw_code, code)]


def test_an_address_like_line_inside_a_message_is_reported_not_taken_for_an_envelope() -> None:
    message = b"QK LGGFMCV\nLGGKKCV BRUFMCK\nFSU/14\n157-33806275DOHLGG/T12K612\nCAINIAO\nRCS/28NOV0640/DOH/T12K612\n"
    result = parse(message, "x.fsu", reference_time_ms=NOV_30_2026)
    assert [r.value["raw_code"] for r in result.records] == ["RCS"]  # the status after it is still read
    assert [(i.field, i.raw) for i in result.issues] == [("status", b"CAINIAO")]
