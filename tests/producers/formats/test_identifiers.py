"""Check-digit and timestamp validators on published example numbers.

Sources: IATA Cargo-IMP manual (AWB serial check digit = first seven digits mod 7);
ISO 6346 annex A (example CSQU3054383); UPU standard S10 (example RR123456785CN is the
check-digit worked example); GS1 General Specifications 7.9 (SSCC 106141412345678908,
EPC Tag Data Standard SSCC URN urn:epc:id:sscc:0614141.1234567890).
"""

from __future__ import annotations

import pytest

from producers.formats.identifiers import (
    IdentifierError,
    container_check_digit,
    is_valid_awb,
    is_valid_container,
    is_valid_gs1_key,
    is_valid_s10,
    known_airport,
    parse_awb,
    parse_s10,
    parse_timestamp,
    parse_utc_offset,
    s10_check_digit,
)


@pytest.mark.parametrize("awb", ["157-12345675", "020-12345675", "15712345675", "176 00000000", "618-09876543"])
def test_valid_air_waybills(awb: str) -> None:
    assert is_valid_awb(awb)


@pytest.mark.parametrize("awb", ["157-12345676", "020-1234567", "157-1234567X", "", "ABC-12345675"])
def test_invalid_air_waybills(awb: str) -> None:
    assert not is_valid_awb(awb)


def test_awb_is_normalised_and_bad_check_digit_named() -> None:
    assert parse_awb("15712345675") == "157-12345675"
    with pytest.raises(IdentifierError, match="mod-7 check digit"):
        parse_awb("157-12345670")


def test_container_check_digit_of_iso_6346_example() -> None:
    assert container_check_digit("CSQU305438") == 3
    assert is_valid_container("CSQU3054383")
    assert is_valid_container("csqu 305438-3")


@pytest.mark.parametrize("container", ["CSQU3054384", "CSQX3054383", "CSQU305438", "MSCU1234565"])
def test_invalid_containers(container: str) -> None:
    assert not is_valid_container(container)


def test_s10_worked_example() -> None:
    assert s10_check_digit("12345678") == 5
    assert parse_s10("rr123456785cn") == "RR123456785CN"


@pytest.mark.parametrize(("serial", "check"), [("00000000", 5), ("00000008", 0), ("47312482", 9)])
def test_s10_check_digit_special_remainders(serial: str, check: int) -> None:
    # 11 - sum mod 11 gives 11 → 5 and 10 → 0; the third is an ordinary case.
    assert s10_check_digit(serial) == check
    assert is_valid_s10(f"EE{serial}{check}CN")
    assert not is_valid_s10(f"EE{serial}{(check + 1) % 10}CN")


@pytest.mark.parametrize("mail_item", ["RR123456784CN", "RR12345678CN", "R1123456785CN", "RR123456785C1"])
def test_invalid_s10_ids(mail_item: str) -> None:
    assert not is_valid_s10(mail_item)


def test_gs1_keys() -> None:
    assert is_valid_gs1_key("106141412345678908")
    assert not is_valid_gs1_key("106141412345678907")
    assert is_valid_gs1_key("4006381333931")  # GTIN-13 printed on GS1's sample barcode


def test_airports() -> None:
    assert known_airport("LGG").time_zone == "Europe/Brussels"
    with pytest.raises(IdentifierError, match="3-letter"):
        known_airport("LG1")
    with pytest.raises(IdentifierError, match="not a known IATA airport"):
        known_airport("QQQ")


@pytest.mark.parametrize(
    ("code", "country", "time_zone"),
    [("BSL", "FR", "Europe/Paris"), ("HEL", "FI", "Europe/Helsinki"), ("ARN", "SE", "Europe/Stockholm"),
     ("NCE", "FR", "Europe/Paris"), ("BHX", "GB", "Europe/London"), ("HGH", "CN", "Asia/Shanghai")],
)  # fmt: skip
def test_airports_come_from_a_maintained_data_set(code: str, country: str, time_zone: str) -> None:
    # The former hand-written table had 48 airports and none of BSL, HEL, ARN, NCE, BHX.
    found = known_airport(code)
    assert (found.code, found.country, found.time_zone) == (code, country, time_zone)


def test_timestamps_keep_offset_and_need_one() -> None:
    stamp = parse_timestamp("2005-04-03T20:33:31.116-06:00")
    assert stamp.utc_offset_minutes == -360
    assert stamp.epoch_ms == parse_timestamp("2005-04-04T02:33:31.116Z").epoch_ms
    with pytest.raises(IdentifierError, match="no UTC offset"):
        parse_timestamp("2005-04-03T20:33:31")
    with pytest.raises(IdentifierError, match="ISO 8601"):
        parse_timestamp("03/04/2005 20:33")
    assert parse_utc_offset("+05:30") == 330
    with pytest.raises(IdentifierError):
        parse_utc_offset("+25:00")
