"""The Faust shell's table set-up, without a broker."""

from __future__ import annotations

import asyncio

import faust
from faust.stores.rocksdb import RocksDBOptions
from faust.types import Message

from streams.settings import WorkerSettings
from streams.worker.agents import RawSchema, store_options
from tests.stages import unique

MIB = 1024 * 1024


def test_memory_tables_take_no_store_options() -> None:
    assert store_options(WorkerSettings(store="memory")) is None


def test_rocksdb_tables_have_bounded_memory_instead_of_fausts_gibibytes() -> None:
    options = store_options(WorkerSettings(store="rocksdb", rocksdb_write_buffer_mb=8, rocksdb_block_cache_mb=32))
    assert options is not None
    rocksdb = RocksDBOptions(**options)
    assert (rocksdb.write_buffer_size, rocksdb.max_write_buffer_number) == (8 * MIB, 2)
    assert rocksdb.block_cache_size == 32 * MIB
    # Faust's own defaults: 64 MiB x 3 memtables and a 2 GiB block cache per table partition.
    assert RocksDBOptions().block_cache_size == 2048 * MIB


def test_the_inputs_schema_hands_the_message_bytes_over_without_fausts_serializers() -> None:
    app = faust.App(unique("raw-schema"), broker="kafka://127.0.0.1:1", autodiscover=False)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the registry decoded a message")

    app.serializers.loads_key = app.serializers.loads_value = refuse
    decode = RawSchema().compile(app)
    message = Message("t.scans", 3, 42, 0.0, 0, [("parcelstream-fanout-path", b"BAG1")], b"LP1", b"\x00avro", None)

    event = asyncio.run(decode(message))

    assert (event.key, event.value, event.message) == (b"LP1", b"\x00avro", message)
    assert event.headers == {"parcelstream-fanout-path": b"BAG1"}
