"""Avro codec for every parcelstream topic, on the Confluent wire format.

A message is ``0x00`` (magic byte) + 4-byte big-endian schema id + schemaless Avro body, so
schema-registry-aware tools can read our topics. Schema ids come from the checked-in
``registry.json``; published schema versions are immutable (their fingerprints are pinned there).
Schemas are parsed once, when the codec is built, and each gets a writer generated from it
(schemas/avro_writer.py: fastavro's bytes without its per-call union validation) and a reader
(schemas/avro_reader.py, for data of the newest version). Decoding resolves the writer's version
to the newest version this code knows, so old data keeps reading after a schema evolves.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import fastavro
import fastavro.schema
import fastavro.validation

from schemas.avro_reader import READ_ERRORS, Reader, compile_reader
from schemas.avro_writer import WRITE_ERRORS, Writer, compile_writer

MAGIC_BYTE = 0
_HEADER = struct.Struct(">bI")
SCHEMA_DIR = Path(__file__).parent / "avro"
REGISTRY_FILE = Path(__file__).parent / "registry.json"
_HEADERS: dict[int, bytes] = {}


class DecodeError(ValueError):
    """A message that is not a parcelstream Avro message. ``reason_code`` is a metric-safe label."""

    def __init__(self, reason_code: str, reason: str) -> None:
        super().__init__(reason)
        self.reason_code = reason_code
        self.reason = reason


class EncodeError(ValueError):
    """A value that does not fit its schema; ``errors`` name the offending fields."""

    def __init__(self, record_name: str, errors: list[str]) -> None:
        super().__init__(f"{record_name}: " + "; ".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class RegisteredSchema:
    schema_id: int
    record_name: str  # short name, e.g. "ScanEvent"
    version: int
    file: str
    fingerprint: str
    parsed: dict[str, Any]
    #: ``parsed`` as fastavro.parse_schema returns it: fastavro re-parses any other schema on every call.
    compiled: dict[str, Any] = field(repr=False, compare=False)
    #: Writer generated from the schema (schemas/avro_writer.py); None: fastavro writes it.
    writer: Writer | None = field(default=None, repr=False, compare=False)
    #: Reader generated from the schema (schemas/avro_reader.py) for data written with it; None: fastavro.
    reader: Reader | None = field(default=None, repr=False, compare=False)

    @property
    def header(self) -> bytes:
        """Magic byte and schema id: the first 5 bytes of every message of this schema."""
        header = _HEADERS.get(self.schema_id)
        if header is None:
            header = _HEADERS[self.schema_id] = _HEADER.pack(MAGIC_BYTE, self.schema_id)
        return header


@dataclass(frozen=True)
class Decoded:
    record_name: str
    schema_id: int
    value: dict[str, Any]


def schema_fingerprint(parsed: dict[str, Any]) -> str:
    """Rabin (CRC-64-AVRO) fingerprint of the schema's parsing canonical form."""
    canonical = fastavro.schema.to_parsing_canonical_form(parsed)
    return fastavro.schema.fingerprint(canonical, "CRC-64-AVRO")


def _load(schema_dir: Path, file: str) -> dict[str, Any]:
    # load_schema resolves named types (parcelstream.Location, ...) from files beside it.
    return fastavro.schema.load_schema(str(schema_dir / file), _write_hint=False)


class Codec:
    """Encodes and decodes the registered record types."""

    def __init__(self, registry_file: Path = REGISTRY_FILE, schema_dir: Path = SCHEMA_DIR) -> None:
        entries = json.loads(registry_file.read_text())["schemas"]
        self._by_id: dict[int, RegisteredSchema] = {}
        self._latest: dict[str, RegisteredSchema] = {}
        for entry in entries:
            parsed = _load(schema_dir, entry["file"])
            compiled = fastavro.parse_schema(parsed)
            registered = RegisteredSchema(
                schema_id=int(entry["id"]),
                record_name=entry["record"],
                version=int(entry["version"]),
                file=entry["file"],
                fingerprint=entry["fingerprint"],
                parsed=parsed,
                compiled=compiled,
                writer=compile_writer(compiled),
                reader=compile_reader(compiled),
            )
            if registered.schema_id in self._by_id:
                raise ValueError(f"{registry_file}: schema id {registered.schema_id} registered twice")
            self._by_id[registered.schema_id] = registered
            latest = self._latest.get(registered.record_name)
            if latest is None or registered.version > latest.version:
                self._latest[registered.record_name] = registered

    @property
    def schemas(self) -> list[RegisteredSchema]:
        return sorted(self._by_id.values(), key=lambda s: s.schema_id)

    def latest(self, record_name: str) -> RegisteredSchema:
        try:
            return self._latest[record_name]
        except KeyError:
            raise KeyError(f"no registered schema for record {record_name!r}") from None

    def encode(self, record_name: str, value: Mapping[str, Any], *, version: int | None = None) -> bytes:
        """Encode with the newest (or the given) version of ``record_name``'s schema."""
        schema = self.latest(record_name)
        if version is not None and version != schema.version:
            schema = next(s for s in self._by_id.values() if s.record_name == record_name and s.version == version)
        if schema.writer is not None:
            out = bytearray(schema.header)
            try:
                schema.writer(value, out)
                return bytes(out)
            except WRITE_ERRORS:
                pass  # fastavro's verdict below: the same bytes, or its error for an invalid value
        buffer = io.BytesIO()
        buffer.write(schema.header)
        try:
            fastavro.schemaless_writer(buffer, schema.compiled, value)
        except WRITE_ERRORS as error:
            raise EncodeError(record_name, self.validate(record_name, value) or [str(error)]) from error
        return buffer.getvalue()

    def validate(self, record_name: str, value: Mapping[str, Any]) -> list[str]:
        """Field-level problems of ``value`` against the newest schema; empty when valid."""
        schema = self.latest(record_name).parsed
        try:
            fastavro.validation.validate(value, schema, raise_errors=True)
        except fastavro.validation.ValidationError as error:
            return [_describe_validation_error(e) for e in error.errors]
        return []

    def decode(self, data: bytes, *, expect: str | None = None) -> Decoded:
        """Decode a wire-format message into the newest known version of its record."""
        if len(data) < _HEADER.size:
            raise DecodeError("truncated", f"message of {len(data)} bytes is shorter than the 5-byte header")
        magic, schema_id = _HEADER.unpack_from(data)
        if magic != MAGIC_BYTE:
            raise DecodeError("bad_magic_byte", f"magic byte is {magic}, expected {MAGIC_BYTE}")
        writer = self._by_id.get(schema_id)
        if writer is None:
            raise DecodeError("unknown_schema_id", f"schema id {schema_id} is not in the registry")
        if expect is not None and writer.record_name != expect:
            raise DecodeError(
                "unexpected_record", f"expected a {expect}, got a {writer.record_name} (schema id {schema_id})"
            )
        reader = self._latest[writer.record_name]
        if reader is writer and writer.reader is not None:
            try:
                value, end = writer.reader(data, _HEADER.size)
                if end == len(data):
                    return Decoded(writer.record_name, schema_id, value)
            except READ_ERRORS:
                pass  # fastavro's verdict below: the same value, or the reason it does not decode
        buffer = io.BytesIO(data)
        buffer.seek(_HEADER.size)
        try:
            value = fastavro.schemaless_reader(buffer, writer.compiled, None if reader is writer else reader.compiled)
        except Exception as error:
            raise DecodeError("corrupt_body", f"{writer.record_name} body does not decode: {error!r}") from error
        if buffer.tell() != len(data):
            raise DecodeError(
                "trailing_bytes", f"{len(data) - buffer.tell()} bytes after the {writer.record_name} body"
            )
        return Decoded(writer.record_name, schema_id, value)


def _describe_validation_error(error: object) -> str:
    text = str(error)
    # fastavro reports "<path> is <value> of type <type> expected <schema>"; keep it short.
    return text if len(text) <= 300 else text[:297] + "..."


@cache
def default_codec() -> Codec:
    """The codec for the checked-in registry, built once per process."""
    return Codec()
