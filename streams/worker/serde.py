"""ParcelState encoding without re-encoding the parcel's history every time.

A ParcelState carries the parcel's whole history, and encoding it was the largest single cost of
the worker (every scan republishes every earlier entry). History entries never change once they
are in a parcel's history, so ``ParcelStateEncoder`` keeps the Avro bytes of each entry, keyed by
(tracking number, event id: unique within a parcel), and assembles the message from the parts:
the fields before ``history`` (encoded by fastavro), the array of cached entries, and the two
fields after it (``open_sla``, ``version``). The result is byte for byte what
``Codec.encode("ParcelState", record)`` writes (tests/streams/worker/test_serde.py checks it).
"""

from __future__ import annotations

import io
import struct
from typing import Any

import fastavro

from schemas.avro_writer import compile_writer
from schemas.codec import MAGIC_BYTE, Codec

#: Entries kept before the cache starts again from empty (a few hundred bytes each).
DEFAULT_MAX_ENTRIES = 200_000
_TAIL_FIELDS = ["open_sla", "version"]


def _long(value: int) -> bytes:
    """Avro long: zig-zag, then base-128 varint."""
    value = (value << 1) ^ (value >> 63)
    out = bytearray()
    while value & ~0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string(value: str) -> bytes:
    data = value.encode()
    return _long(len(data)) + data


class ParcelStateEncoder:
    def __init__(self, codec: Codec, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        registered = codec.latest("ParcelState")
        fields = registered.parsed["fields"]
        names = [field["name"] for field in fields]
        history_index = names.index("history")
        if names[history_index + 1 :] != _TAIL_FIELDS:
            raise ValueError(f"ParcelState fields after history changed: {names[history_index + 1 :]}")
        named = registered.compiled["__named_schemas"]
        head = {"type": "record", "name": "parcelstream.ParcelStateHead", "fields": fields[:history_index]}
        self._head = fastavro.parse_schema(head, named_schemas=dict(named))
        others = {name: schema for name, schema in named.items() if name != "parcelstream.HistoryEntry"}
        self._entry = fastavro.parse_schema(named["parcelstream.HistoryEntry"], named_schemas=others)
        # Generated writers (schemas/avro_writer.py) where the schemas allow; fastavro otherwise.
        self._head_writer = compile_writer(self._head, named)
        self._entry_writer = compile_writer(self._entry, named)
        self._header = struct.pack(">bI", MAGIC_BYTE, registered.schema_id)
        self._entries: dict[tuple[str, str], bytes] = {}
        self._max_entries = max_entries

    def encode(self, record: dict[str, Any]) -> bytes:
        """The wire-format ParcelState message of ``record`` (``Parcel.to_record()``)."""
        buffer = io.BytesIO()
        buffer.write(self._header)
        if self._head_writer is not None:
            head = bytearray()
            self._head_writer(record, head)
            buffer.write(head)
        else:
            fastavro.schemaless_writer(buffer, self._head, record)
        history = record["history"]
        if history:
            buffer.write(_long(len(history)))
            tracking_number = record["tracking_number"]
            for entry in history:
                buffer.write(self._entry_bytes(tracking_number, entry))
        buffer.write(b"\x00")
        open_sla = record["open_sla"]
        if open_sla:
            buffer.write(_long(len(open_sla)))
            for item in open_sla:
                buffer.write(_string(item))
        buffer.write(b"\x00")
        buffer.write(_long(record["version"]))
        return buffer.getvalue()

    def _entry_bytes(self, tracking_number: str, entry: dict[str, Any]) -> bytes:
        key = (tracking_number, entry["event_id"])
        data = self._entries.get(key)
        if data is None:
            if len(self._entries) >= self._max_entries:
                self._entries.clear()  # bounded memory; the next states re-encode their entries
            if self._entry_writer is not None:
                written = bytearray()
                self._entry_writer(entry, written)
                data = self._entries[key] = bytes(written)
            else:
                entry_buffer = io.BytesIO()
                fastavro.schemaless_writer(entry_buffer, self._entry, entry)
                data = self._entries[key] = entry_buffer.getvalue()
        return data
