"""The Faust shell's table set-up, without a broker."""

from __future__ import annotations

from faust.stores.rocksdb import RocksDBOptions

from streams.settings import WorkerSettings
from streams.worker.agents import store_options

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
