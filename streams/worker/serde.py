"""Bytes of the worker: the stored parcel's table value, the ParcelState spliced from the stored
history, and the outbox record of a batch's outputs.

History entries are encoded once, when they arrive, as the Avro bytes of a ParcelState
``HistoryEntry`` (``AvroEntryCodec``, the core's ``EntryCodec``). A ParcelState is then written
from its parts without encoding an entry again: the fields before ``history`` (fastavro), the
array of stored entries, and the two fields after it (``open_sla``, ``version``) — byte for byte
what ``Codec.encode("ParcelState", record)`` writes (tests/streams/worker/test_serde.py).

Stored parcel (``encode_parcel`` / ``decode_parcel``)::

    b"P2" | varint length | zstd(varint header length | header | open chunk's entries)
          | sealed chunks (deflate, CHUNK_ENTRIES entries each)

(``P1``, still read, deflated the first part too.)

The header is the orjson of ``Parcel.to_dict()`` with the entries' ``sizes`` and the sealed
``chunks``' lengths. Entries are compressed in chunks of ``CHUNK_ENTRIES`` (raw deflate with a
fixed dictionary of the taxonomy's words): a full chunk is compressed once, when it fills, and
kept compressed (``History.memo``) while the history's prefix does not change; the header and the
open chunk, both bounded, are compressed at every write, with zstd (level 1, the same words as a
raw-content dictionary): 3× cheaper than deflate for ~10 % more bytes, and this is the compression
every table write pays. So a scan costs the same whatever the length of the history.
The dictionary is part of the stored format: never change ``_ZDICT_TEXT``, add a new format.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterable
from typing import Any, Final, cast

import fastavro
import orjson
import zstandard

from schemas.avro_reader import READ_ERRORS, compile_reader
from schemas.avro_writer import compile_writer, encode_long
from schemas.codec import MAGIC_BYTE, Codec
from streams.core.authority import last_mile_carrier
from streams.core.parcel import EMITTED_ID_CHARS, ROUTE_CODES, RULE_CODES, CurrentEntry, History, Parcel
from streams.core.stages import StageProgress

_TAIL_FIELDS = ["open_sla", "version"]
#: Entries per compressed chunk of a stored history.
CHUNK_ENTRIES: Final = 8
PARCEL_FORMAT: Final = b"P2"
#: The first format: its first part deflated as the sealed chunks are (still read).
DEFLATED_PARCEL_FORMAT: Final = b"P1"
_ZDICT_TEXT: Final = (
    "AVAILABLE_FOR_PICKUP AttemptFail AvailableForPickup BE CN CustomsHold DAMAGED DE DELIVERED "
    "DELIVERY_ATTEMPT_FAILED Delivered EXPORT_CANCELLED EXPORT_CUSTOMS_CLEARED EXPORT_CUSTOMS_HELD "
    "EXPORT_CUSTOMS_PRESENTED Exception FR HGH HUB_DEPARTED HUB_MISSORTED HUB_RECEIVED HUB_SORTED "
    "IMPORT_CUSTOMS_CLEARED IMPORT_CUSTOMS_HELD IMPORT_CUSTOMS_PRESENTED InTransit InfoReceived "
    "LASTMILE_HANDOVER LASTMILE_RECEIVED LGG LINEHAUL_ARRIVED LINEHAUL_BOOKED LINEHAUL_DEPARTED "
    "LINEHAUL_DISCREPANCY LINEHAUL_MANIFESTED LINEHAUL_RECEIVED LINEHAUL_UNLOADED LOST NL ORDER_CREATED "
    "ORIGIN_RECEIVED ORIGIN_SORTED OUT_FOR_DELIVERY OutForDelivery RETURNED RETURN_TO_SENDER "
    "TRANSIT_ARRIVED TRANSIT_DEPARTED airport arrived_at_destination arrived_at_transit "
    "at_delivery_office at_pickup_point attempt_failed damaged delivered departed_hub departed_origin "
    "departed_transit export_cancelled export_customs_cleared export_customs_presented facility "
    "handed_to_last_mile held_export held_import import_customs_cleared import_customs_presented "
    "linehaul_booked linehaul_discrepancy linehaul_manifested lost missorted_at_hub order_created "
    "out_for_delivery received_at_hub received_at_origin received_by_linehaul returned_to_sender "
    "returning_to_sender sorted_at_hub sorted_at_origin unloaded_at_destination"
)


def _string(value: str) -> bytes:
    data = value.encode()
    return encode_long(len(data)) + data


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_varint(data: bytes | memoryview, offset: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, offset
        shift += 7


#: Avro strings of the taxonomy's words: what history entries repeat most.
ZDICT: Final = b"".join(_string(word) for word in _ZDICT_TEXT.split())


def compress_chunk(data: bytes) -> bytes:
    """A sealed chunk of history entries, compressed (once)."""
    return _deflate(data)


#: How sealed chunks are deflated (once each). A chunk is a few kB: with a window of 8 kB (the
#: dictionary fits) and memory level 6, zlib's state is ~64 kB instead of ~384 kB (window 32 kB,
#: memory level 9), so creating the compressor costs ~35 µs less, and chunks under 8 kB come out
#: byte for byte the same. ``decompress_chunk`` reads any window up to 32 kB: values written with
#: the earlier parameters read the same.
DEFLATE_LEVEL: Final = 6
DEFLATE_WINDOW_BITS: Final = 13
DEFLATE_MEMORY_LEVEL: Final = 6


def _deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(
        DEFLATE_LEVEL, zlib.DEFLATED, -DEFLATE_WINDOW_BITS, DEFLATE_MEMORY_LEVEL, zlib.Z_DEFAULT_STRATEGY, ZDICT
    )
    return compressor.compress(data) + compressor.flush()


#: The changing part of a stored parcel, compressed at every table write: zstd level 1 with the
#: dictionary as raw content (measured on the benchmark's parcels: 29 µs and ~1,010 B a write,
#: against 88 µs and ~920 B deflated). No checksum: the changelog and RocksDB have their own.
ZSTD_LEVEL: Final = 1
_ZSTD_DICT = zstandard.ZstdCompressionDict(ZDICT, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
_ZSTD_DICT.precompute_compress(level=ZSTD_LEVEL)
_ZSTD_COMPRESSOR = zstandard.ZstdCompressor(
    level=ZSTD_LEVEL, dict_data=_ZSTD_DICT, write_checksum=False, write_content_size=True, write_dict_id=False
)
_ZSTD_DECOMPRESSOR = zstandard.ZstdDecompressor(dict_data=_ZSTD_DICT)


def decompress_chunk(data: bytes) -> bytes:
    decompressor = zlib.decompressobj(-15, ZDICT)
    return decompressor.decompress(data) + decompressor.flush()


class AvroEntryCodec:
    """History entries as the Avro bytes of a ParcelState ``HistoryEntry`` (the core's EntryCodec)."""

    def __init__(self, codec: Codec) -> None:
        registered = codec.latest("ParcelState")
        named = registered.compiled["__named_schemas"]
        others = {name: schema for name, schema in named.items() if name != "parcelstream.HistoryEntry"}
        # A record schema parses to a dict (fastavro types the result as any schema).
        self.schema = cast(
            "dict[str, Any]", fastavro.parse_schema(named["parcelstream.HistoryEntry"], named_schemas=others)
        )
        # A generated writer and reader (schemas/avro_writer.py, avro_reader.py) where the schema
        # allows; fastavro otherwise.
        self._writer = compile_writer(self.schema, named)
        self._reader = compile_reader(self.schema, named)

    def encode(self, entry: dict[str, Any]) -> bytes:
        if self._writer is not None:
            written = bytearray()
            self._writer(entry, written)
            return bytes(written)
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, self.schema, entry)
        return buffer.getvalue()

    def decode(self, blob: bytes, sizes: list[int]) -> list[dict[str, Any]]:
        if self._reader is not None:
            try:
                return self._read(blob, len(sizes))
            except READ_ERRORS:
                pass  # damaged bytes: fastavro's verdict
        buffer = io.BytesIO(blob)
        return [fastavro.schemaless_reader(buffer, self.schema, None) for _ in sizes]  # type: ignore[misc]

    def _read(self, blob: bytes, count: int) -> list[dict[str, Any]]:
        read = self._reader
        assert read is not None
        entries, position = [], 0
        for _ in range(count):
            entry, position = read(blob, position)
            entries.append(entry)
        return entries

    def mentions(self, blob: bytes, event_id: str) -> bool:
        return _string(event_id) in blob


class ParcelStateEncoder:
    """The wire-format ParcelState of a stored parcel, its history spliced from the stored bytes."""

    def __init__(self, codec: Codec) -> None:
        registered = codec.latest("ParcelState")
        fields = registered.parsed["fields"]
        names = [field["name"] for field in fields]
        history_index = names.index("history")
        if names[history_index + 1 :] != _TAIL_FIELDS:
            raise ValueError(f"ParcelState fields after history changed: {names[history_index + 1 :]}")
        named = registered.compiled["__named_schemas"]
        head = {"type": "record", "name": "parcelstream.ParcelStateHead", "fields": fields[:history_index]}
        self._head = cast("dict[str, Any]", fastavro.parse_schema(head, named_schemas=dict(named)))
        # A generated writer (schemas/avro_writer.py) where the schema allows; fastavro otherwise.
        self._head_writer = compile_writer(self._head, named)
        self._header = struct.pack(">bI", MAGIC_BYTE, registered.schema_id)
        self.entries = AvroEntryCodec(codec)

    def encode(self, parcel: Parcel) -> bytes:
        """The ParcelState message of ``parcel``, whose history entries ``self.entries`` encoded."""
        record = parcel.to_record_head()
        buffer = io.BytesIO()
        buffer.write(self._header)
        if self._head_writer is not None:
            head = bytearray()
            self._head_writer(record, head)
            buffer.write(head)
        else:
            fastavro.schemaless_writer(buffer, self._head, record)
        history = parcel.history
        if history.sizes:
            buffer.write(encode_long(len(history.sizes)))
            buffer.write(history.blob)
        buffer.write(b"\x00")
        open_sla = record["open_sla"]
        if open_sla:
            buffer.write(encode_long(len(open_sla)))
            for item in open_sla:
                buffer.write(_string(item))
        buffer.write(b"\x00")
        buffer.write(encode_long(record["version"]))
        return buffer.getvalue()


def _sealed(history: History) -> list[bytes]:
    """The compressed chunks of the history's full chunks, compressing only those not yet kept
    (or moved by an insert since: ``History.memo_entries``)."""
    memo: list[bytes] = history.memo if isinstance(history.memo, list) else []
    full = len(history.sizes) // CHUNK_ENTRIES
    memo = memo[: min(full, history.memo_entries // CHUNK_ENTRIES)]  # a new list: copies may share the old
    if len(memo) < full:
        offsets = [0]
        for size in history.sizes[: full * CHUNK_ENTRIES]:
            offsets.append(offsets[-1] + size)
        for chunk in range(len(memo), full):
            start, end = offsets[chunk * CHUNK_ENTRIES], offsets[(chunk + 1) * CHUNK_ENTRIES]
            memo.append(compress_chunk(history.blob[start:end]))
    history.memo = memo
    history.memo_entries = len(history.sizes)
    return memo


def encode_parcel(parcel: Parcel) -> bytes:
    """The table value of a stored parcel."""
    history = parcel.history
    chunks = _sealed(history)
    header = parcel.to_dict()
    header["sizes"] = history.sizes
    header["chunks"] = [len(chunk) for chunk in chunks]
    head = orjson.dumps(header)
    tail_start = sum(history.sizes[: len(chunks) * CHUNK_ENTRIES])
    # The fields and the open chunk change at every write; both are bounded, so is compressing them.
    packed = _ZSTD_COMPRESSOR.compress(b"".join((_varint(len(head)), head, history.blob[tail_start:])))
    return b"".join((PARCEL_FORMAT, _varint(len(packed)), packed, *chunks))


def decode_parcel(data: bytes, entries: AvroEntryCodec) -> Parcel:
    """A stored parcel from its table value (``encode_parcel``, or the JSON of earlier versions)."""
    if data[:1] == b"{":
        return _from_legacy_json(orjson.loads(data), entries)
    tag = data[:2]
    if tag not in (PARCEL_FORMAT, DEFLATED_PARCEL_FORMAT):
        raise ValueError(f"unknown stored parcel format {bytes(tag)!r}")
    length, offset = _read_varint(data, 2)
    first = data[offset : offset + length]
    packed = _ZSTD_DECOMPRESSOR.decompress(first) if tag == PARCEL_FORMAT else decompress_chunk(first)
    offset += length
    head_length, head_start = _read_varint(packed, 0)
    header = orjson.loads(packed[head_start : head_start + head_length])
    chunks: list[bytes] = []
    for size in header.pop("chunks"):
        chunks.append(data[offset : offset + size])
        offset += size
    blob = b"".join([*(decompress_chunk(chunk) for chunk in chunks), packed[head_start + head_length :]])
    sizes = header.pop("sizes")
    history = History(entries, blob, sizes, None, chunks, memo_entries=len(sizes))
    return Parcel.from_dict(header, history)


def _from_legacy_json(data: dict[str, Any], entries: AvroEntryCodec) -> Parcel:
    """A parcel stored as JSON with its whole history (before the compact format): its entries are
    encoded once, the rest kept as the rules need it; the replay record is dropped (the outbox
    replaces it), and the version continues from the history's length."""
    history = History(entries)
    for entry in data["history"]:
        history.append(entry, entries.encode(entry))
    rows = data["history"]
    current = rows[data.get("current_index", 0)] if rows else None
    located = [row["location"] for row in rows if row["location"] is not None]
    up_to_current = [row["location"] for row in rows[: data.get("current_index", 0) + 1] if row["location"] is not None]
    first_seen = data.get("first_seen", {})
    shipment_key = data.get("shipment_key")
    return Parcel(
        tracking_number=data["tracking_number"],
        history=history,
        shipment=data.get("shipment"),
        shipment_key=(shipment_key[0], shipment_key[1]) if shipment_key else None,
        current_entry=CurrentEntry(current["event_time_ms"], current["event_id"], current["code"], current["carrier"])
        if current
        else None,
        last_location=up_to_current[-1] if up_to_current else None,
        latest_location=located[-1] if located else None,
        first_seen={code: seen[0] for code, seen in first_seen.items() if code in RULE_CODES},
        route_points={code: (seen[0], seen[1], seen[2]) for code, seen in first_seen.items() if code in ROUTE_CODES},
        run_counts={key.split("|", 1)[-1]: count for key, count in data.get("run_counts", {}).items()},
        update_sequence=data.get("update_sequence", 0),
        estimated_delivery=data.get("estimated_delivery"),
        estimate_on_time=data.get("estimate_on_time", True),
        sla_emitted={event_id[:EMITTED_ID_CHARS] for event_id in data.get("sla_emitted", ())},
        sla_open={rule: (value[0], value[1]) for rule, value in data.get("sla_open", {}).items()},
        version=len(rows),
        last_mile_carrier=last_mile_carrier(rows),
        stages=StageProgress.from_list(data.get("stages")),
    )


def pack_outputs(outputs: Iterable[tuple[str, bytes | None, bytes | None]]) -> bytes:
    """(topic, key, value) triples as one byte string (an outbox record); None: absent (tombstone)."""
    parts: list[bytes] = []
    for topic, key, value in outputs:
        name = topic.encode()
        parts += (_varint(len(name)), name)
        for data in (key, value):
            if data is None:
                parts.append(b"\x00")
            else:
                parts += (_varint(len(data) + 1), data)
    return b"".join(parts)


def unpack_outputs(data: bytes) -> list[tuple[str, bytes | None, bytes | None]]:
    outputs: list[tuple[str, bytes | None, bytes | None]] = []
    offset = 0
    while offset < len(data):
        length, offset = _read_varint(data, offset)
        topic = data[offset : offset + length].decode()
        offset += length
        fields: list[bytes | None] = []
        for _ in range(2):
            length, offset = _read_varint(data, offset)
            fields.append(None if length == 0 else data[offset : offset + length - 1])
            offset += max(0, length - 1)
        outputs.append((topic, fields[0], fields[1]))
    return outputs
