from __future__ import annotations

import struct

import pytest

from schemas.codec import DecodeError, EncodeError, default_codec

SCAN = {
    "event_id": "CK-DEP-1",
    "tracking_number": "LP00123456789CN",
    "source": "flight",
    "code": "LINEHAUL_DEPARTED",
    "raw_code": "DEP",
    "raw_format": "iata-fsu",
    "carrier": "CK",
    "event_time_ms": 1_790_000_000_000,
    "utc_offset_minutes": 480,
    "recorded_time_ms": 1_790_000_060_000,
    "location": {"code": "HGH", "kind": "airport", "country": "CN", "name": None},
    "references": {"awb": "157-12345675", "flight_number": "CK261"},
}


def test_round_trip_keeps_every_field() -> None:
    codec = default_codec()
    decoded = codec.decode(codec.encode("ScanEvent", SCAN))
    assert decoded.record_name == "ScanEvent"
    for field, value in SCAN.items():
        if field == "references":
            assert decoded.value["references"]["awb"] == "157-12345675"
            assert decoded.value["references"]["container"] is None
        else:
            assert decoded.value[field] == value


def test_wire_format_is_confluent_magic_byte_and_schema_id() -> None:
    codec = default_codec()
    data = codec.encode("ScanEvent", SCAN)
    magic, schema_id = struct.unpack(">bI", data[:5])
    assert magic == 0
    assert schema_id == codec.latest("ScanEvent").schema_id


@pytest.mark.parametrize(
    ("data", "reason_code"),
    [
        (b"", "truncated"),
        (b"\x01\x00\x00\x00\x01abc", "bad_magic_byte"),
        (b"\x00\x00\x00\x99\x99abc", "unknown_schema_id"),
        (b"\x00\x00\x00\x00\x01\xff\xff\xff", "corrupt_body"),
    ],
)
def test_undecodable_messages_raise_decode_error_with_reason(data: bytes, reason_code: str) -> None:
    with pytest.raises(DecodeError) as error:
        default_codec().decode(data)
    assert error.value.reason_code == reason_code


def test_trailing_bytes_are_refused() -> None:
    codec = default_codec()
    with pytest.raises(DecodeError) as error:
        codec.decode(codec.encode("ScanEvent", SCAN) + b"junk")
    assert error.value.reason_code == "trailing_bytes"


def test_decode_can_insist_on_a_record_type() -> None:
    codec = default_codec()
    with pytest.raises(DecodeError) as error:
        codec.decode(codec.encode("ScanEvent", SCAN), expect="Manifest")
    assert error.value.reason_code == "unexpected_record"


def test_invalid_value_names_the_field() -> None:
    bad = dict(SCAN, source="teleport")
    with pytest.raises(EncodeError) as error:
        default_codec().encode("ScanEvent", bad)
    assert "source" in str(error.value)
    assert default_codec().validate("ScanEvent", SCAN) == []
