"""Readers generated from the schemas read what fastavro reads, and refuse (leaving the message to
fastavro) whatever they are not sure of."""

from __future__ import annotations

import io
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.avro_reader import READ_ERRORS, compile_reader, read_long
from schemas.codec import Decoded, DecodeError, RegisteredSchema, default_codec
from tests.schemas.test_avro_writer import LONGS, SCHEMAS, fastavro_bytes, values_of
from tests.schemas.test_codec import SCAN

CODEC = default_codec()


def fastavro_value(schema: RegisteredSchema, data: bytes) -> tuple[Any, int]:
    buffer = io.BytesIO(data)
    buffer.seek(5)
    value = fastavro.schemaless_reader(buffer, schema.compiled, None)
    return value, buffer.tell()


def valid_messages(record_name: str) -> st.SearchStrategy[bytes]:
    schema = SCHEMAS[record_name]
    values = values_of(schema.compiled, dict(schema.compiled["__named_schemas"]))
    return values.map(lambda value: fastavro_bytes(schema, value))


@pytest.mark.parametrize("record_name", sorted(SCHEMAS))
def test_every_registered_schema_gets_a_generated_reader(record_name: str) -> None:
    assert SCHEMAS[record_name].reader is not None


@pytest.mark.parametrize("record_name", sorted(SCHEMAS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_generated_reader_reads_what_fastavro_reads(record_name: str, data: st.DataObject) -> None:
    schema = SCHEMAS[record_name]
    message = data.draw(valid_messages(record_name))
    assert schema.reader is not None
    assert schema.reader(message, 5) == fastavro_value(schema, message)
    assert CODEC.decode(message) == Decoded(record_name, schema.schema_id, fastavro_value(schema, message)[0])


@pytest.mark.parametrize("record_name", ["ScanEvent", "Manifest", "ParcelState"])
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_on_damaged_bytes_the_generated_reader_agrees_with_fastavro_or_refuses(
    record_name: str, data: st.DataObject
) -> None:
    schema = SCHEMAS[record_name]
    message = bytearray(data.draw(valid_messages(record_name)))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(5, len(message) - 1))
        message[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(5, len(message)))
    damaged = bytes(message[:cut])
    assert schema.reader is not None
    try:
        generated = schema.reader(damaged, 5)
    except READ_ERRORS:
        return  # the codec asks fastavro
    assert generated == fastavro_value(schema, damaged)


@given(LONGS)
def test_longs_read_back(value: int) -> None:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, {"type": "long"}, value)
    assert read_long(buffer.getvalue() + b"\x00", 0) == (value, len(buffer.getvalue()))
    # The generated readers read longs inline: the same values.
    schema = SCHEMAS["ScanEvent"]
    scan = {**SCAN, "event_time_ms": value, "recorded_time_ms": -value - 1}
    assert schema.reader is not None
    message = fastavro_bytes(schema, scan)
    assert schema.reader(message, 5) == fastavro_value(schema, message)


@pytest.mark.parametrize(
    ("body", "reason_code"),
    [
        (b"\x02", "corrupt_body"),  # a string length past the end
        (b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", "corrupt_body"),  # a varint beyond 64 bits
    ],
)
def test_damaged_messages_are_still_refused_with_fastavros_reason(body: bytes, reason_code: str) -> None:
    data = SCHEMAS["ScanEvent"].header + body
    with pytest.raises(DecodeError) as error:
        CODEC.decode(data)
    assert error.value.reason_code == reason_code


def test_trailing_bytes_after_a_valid_body_are_still_refused() -> None:
    message = CODEC.encode("SlaEvent", {**_sla_event(), "route": None})
    with pytest.raises(DecodeError) as error:
        CODEC.decode(message + b"\x00")
    assert error.value.reason_code == "trailing_bytes"


def test_schemas_beyond_the_generator_keep_fastavro() -> None:
    several = {"type": "record", "name": "Several", "fields": [{"name": "v", "type": ["null", "string", "long"]}]}
    mapped = {"type": "record", "name": "Mapped", "fields": [{"name": "m", "type": {"type": "map", "values": "long"}}]}
    assert compile_reader(fastavro.parse_schema(several)) is None
    assert compile_reader(fastavro.parse_schema(mapped)) is None


def _sla_event() -> dict[str, Any]:
    return {
        "sla_event_id": "e",
        "tracking_number": "LP00123456789CN",
        "rule": "promise",
        "kind": "breach",
        "deadline_ms": 1,
        "observed_ms": 2,
        "carrier": "CK",
        "service_level": None,
    }
