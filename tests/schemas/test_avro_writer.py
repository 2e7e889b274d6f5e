"""Writers generated from the schemas write exactly what fastavro writes (the wire format is the contract)."""

from __future__ import annotations

import io
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.avro_writer import compile_writer, encode_long
from schemas.codec import EncodeError, RegisteredSchema, default_codec
from tests.schemas.test_codec import SCAN

CODEC = default_codec()
SCHEMAS = {schema.record_name: schema for schema in CODEC.schemas}


def fastavro_bytes(schema: RegisteredSchema, value: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    buffer.write(schema.header)
    fastavro.schemaless_writer(buffer, schema.compiled, value)
    return buffer.getvalue()


def generated_bytes(schema: RegisteredSchema, value: dict[str, Any]) -> bytes:
    assert schema.writer is not None
    out = bytearray(schema.header)
    schema.writer(value, out)
    return bytes(out)


def values_of(schema: Any, named: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Any valid value of ``schema`` (a parsed schema), fields with a default sometimes left out."""
    if isinstance(schema, str) and schema in named:
        schema = named[schema]
    if isinstance(schema, list):
        return st.one_of(*(values_of(branch, named) for branch in schema))
    kind = schema["type"] if isinstance(schema, dict) else schema
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "int":
        return st.integers(-(2**31), 2**31 - 1)
    if kind == "long":
        return st.integers(-(2**63), 2**63 - 1)
    if kind == "string":
        return st.text(max_size=80)
    if kind == "bytes":
        return st.binary(max_size=80)
    if kind == "enum":
        return st.sampled_from(schema["symbols"])
    if kind == "array":
        return st.lists(values_of(schema["items"], named), max_size=4)
    if kind == "map":
        return st.dictionaries(st.text(max_size=10), values_of(schema["values"], named), max_size=4)
    if kind == "record":
        named.setdefault(schema["name"], schema)
        required = {f["name"]: values_of(f["type"], named) for f in schema["fields"] if "default" not in f}
        optional = {f["name"]: values_of(f["type"], named) for f in schema["fields"] if "default" in f}
        return st.fixed_dictionaries(required, optional=optional)
    if kind in named:
        return values_of(named[kind], named)
    raise AssertionError(f"no strategy for {schema!r}")


@pytest.mark.parametrize("record_name", sorted(SCHEMAS))
def test_every_registered_schema_gets_a_generated_writer(record_name: str) -> None:
    assert SCHEMAS[record_name].writer is not None


@pytest.mark.parametrize("record_name", sorted(SCHEMAS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_generated_bytes_equal_fastavro_bytes(record_name: str, data: st.DataObject) -> None:
    schema = SCHEMAS[record_name]
    value = data.draw(values_of(schema.compiled, dict(schema.compiled["__named_schemas"])))
    expected = fastavro_bytes(schema, value)
    assert generated_bytes(schema, value) == expected
    assert CODEC.encode(record_name, value) == expected


#: Any long, with extra weight where the generated code takes its inline paths: one byte, and the
#: three 14-bit groups of millisecond timestamps (2**27 to 2**41), edges included.
LONGS = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.integers(-2, 2**7),
    st.integers(2**27 - 2, 2**41 + 2),
    st.sampled_from([2**n + d for n in (6, 7, 13, 14, 27, 28, 34, 35, 41, 42, 62) for d in (-1, 0, 1)] + [2**63 - 1]),
)


@given(LONGS)
def test_longs_are_zigzag_varints_as_fastavro_writes_them(value: int) -> None:
    schema = SCHEMAS["ScanEvent"]
    scan = {**SCAN, "event_time_ms": value}
    assert generated_bytes(schema, scan) == fastavro_bytes(schema, scan)
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, {"type": "long"}, value)
    assert encode_long(value) == buffer.getvalue()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"event_time_ms": "yesterday"}, "event_time_ms"),
        ({"source": "pigeon"}, "source"),
        ({"tracking_number": 42}, "tracking_number"),
        ({"location": {"code": "HGH"}}, "location"),
        ({"event_time_ms": 2**64}, "event_time_ms"),
    ],
)
def test_invalid_values_still_get_fastavros_error(change: dict[str, Any], field: str) -> None:
    """The generated writer raises; the codec then lets fastavro name the problem."""
    schema = SCHEMAS["ScanEvent"]
    value = {**SCAN, **change}
    with pytest.raises((TypeError, KeyError, AttributeError, ValueError, OverflowError)):
        generated_bytes(schema, value)
    with pytest.raises(EncodeError) as error:
        CODEC.encode("ScanEvent", value)
    assert field in str(error.value)


def test_a_missing_required_field_is_refused() -> None:
    value = {key: item for key, item in SCAN.items() if key != "carrier"}
    with pytest.raises(EncodeError):
        CODEC.encode("ScanEvent", value)


def test_schemas_beyond_the_generator_keep_fastavro() -> None:
    several = {"type": "record", "name": "Several", "fields": [{"name": "v", "type": ["null", "string", "long"]}]}
    logical = {
        "type": "record",
        "name": "Logical",
        "fields": [{"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}}],
    }
    assert compile_writer(fastavro.parse_schema(several)) is None
    assert compile_writer(fastavro.parse_schema(logical)) is None


def test_fields_left_out_take_their_defaults_as_fastavro_does() -> None:
    schema = SCHEMAS["ScanEvent"]
    scan = {key: value for key, value in SCAN.items() if key not in ("utc_offset_minutes", "location", "reason")}
    assert generated_bytes(schema, scan) == fastavro_bytes(schema, scan)
