"""Table changelog records through librdkafka (streams/worker/changelog.py) on a real broker and a real
RocksDB store: the records Faust would have sent (topic, the writing event's partition, key and value
bytes, tombstones), acknowledged when ``acked`` returns, the store's persisted offset moved to the last
acknowledged record as Faust's ``_on_changelog_sent`` does; a refused record fails the batch; a killed
worker restarts on its own RocksDB store."""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from faust.events import Event
from faust.streams import _current_event
from faust.types import TP, Message

from deploy.embedded import free_port
from schemas.kafka_clients import producer_config
from schemas.topics import TopicNames
from streams.settings import WorkerSettings
from streams.worker.agents import AckedTable, acked_table
from streams.worker.app import create_app
from streams.worker.changelog import ChangelogError, LibrdkafkaChangelog
from tests.conftest import unique
from tests.stages import PARTITIONS as STAGE_PARTITIONS
from tests.stages import StageLauncher, TopicReader, publish_records, wait_for
from tests.streams.worker.test_worker import simulation, wait_for_truth

pytestmark = pytest.mark.integration

PARTITIONS = 4
#: (offset, key, value) of a record read back.
Record = tuple[int, bytes | None, bytes | None]


def create_topic(bootstrap_servers: str, name: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    admin.create_topics([NewTopic(name, PARTITIONS, 1)])[name].result(timeout=30)


def read_partition(bootstrap_servers: str, topic: str, partition: int) -> list[Record]:
    """Every record now in the partition (what was acknowledged before the call)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": unique("reader"),
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "log_level": 0,
        }
    )
    consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
    records: list[Record] = []
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None:
                continue
            error = message.error()
            if error is not None and error.code() == KafkaError._PARTITION_EOF:
                return records
            if error is None:
                records.append((message.offset() or 0, message.key(), message.value()))
    finally:
        consumer.close()
    raise AssertionError(f"{topic}[{partition}] was not read to its end")


@pytest.fixture
def rocksdb_table(bootstrap_servers: str, tmp_path: Path) -> Iterator[tuple[AckedTable, LibrdkafkaChangelog]]:
    settings = WorkerSettings(
        store="rocksdb", data_dir=tmp_path, topic_prefix=unique("changelog"), bootstrap_servers=bootstrap_servers
    )
    changelog = LibrdkafkaChangelog(Producer(producer_config(bootstrap_servers)))
    table = acked_table(create_app(settings), settings, "parcels", "Parcel states", changelog)
    create_topic(bootstrap_servers, table.changelog_topic_name)
    yield table, changelog
    changelog.producer.flush(5)


def writing_as(table: AckedTable, partition: int) -> Event:
    """The event the agent writes a key as: Faust puts the key in that event's partition."""
    message = Message("t.scans", partition, 7, 0.0, 0, None, b"LP1", b"scan", None)
    event = Event(table.app, b"LP1", b"scan", {}, message)
    _current_event.set(weakref.ref(event))
    return event


def test_table_writes_are_the_records_faust_sends_acknowledged_with_the_persisted_offset(
    bootstrap_servers: str, rocksdb_table: tuple[AckedTable, LibrdkafkaChangelog]
) -> None:
    table, changelog = rocksdb_table
    topic = table.changelog_topic_name

    async def batch() -> None:
        event = writing_as(table, 2)  # noqa: F841  # Faust's current event is a weak reference
        table["LP1"] = b"\x00one"
        table["LP2é"] = b"two"
        del table["LP1"]
        await changelog.acked()

    asyncio.run(batch())
    records = read_partition(bootstrap_servers, topic, 2)  # no waiting: acknowledged already
    faust_key = table.changelog_topic.prepare_key  # Faust's own serialization of the table's keys
    assert [(key, value) for _offset, key, value in records] == [
        (faust_key("LP1", table.key_serializer)[0], b"\x00one"),
        (faust_key("LP2é", table.key_serializer)[0], b"two"),
        (faust_key("LP1", table.key_serializer)[0], None),  # a tombstone
    ]
    assert records[0][1] == b'"LP1"'  # JSON, as Faust's changelogs always had them
    assert table.changelog_topic.prepare_value(b"\x00one", table.value_serializer)[0] == b"\x00one"
    assert all(read_partition(bootstrap_servers, topic, p) == [] for p in (0, 1, 3))
    assert table.data.persisted_offset(TP(topic, 2)) == records[-1][0]
    assert table.data.persisted_offset(TP(topic, 1)) is None


def test_a_changelog_record_the_broker_does_not_acknowledge_fails_the_batch(tmp_path: Path) -> None:
    unreachable = f"127.0.0.1:{free_port()}"
    producer = Producer(producer_config(unreachable, **{"message.timeout.ms": 500, "log_level": 0}))
    changelog = LibrdkafkaChangelog(producer)
    acknowledged: list[tuple[TP, int]] = []
    changelog.register("t-worker-parcels-changelog", lambda tp, offset: acknowledged.append((tp, offset)))
    changelog.produce("t-worker-parcels-changelog", 0, b'"LP1"', b"state")
    changelog.produce("t-worker-parcels-changelog", 1, b'"LP2"', None)
    with pytest.raises(ChangelogError, match="2 of 2 changelog records refused"):
        asyncio.run(changelog.acked())
    assert acknowledged == []  # no persisted offset for records that were not stored


def test_a_killed_rocksdb_worker_restarts_on_its_own_store_and_ends_in_the_true_states(
    bootstrap_servers: str,
    topics_factory: Callable[..., TopicNames],
    stages: StageLauncher,
    readers: Callable[[str], TopicReader],
) -> None:
    """The restarted worker finds its RocksDB store with the persisted offsets the delivery reports
    moved, reads only the changelog records past them, and ends where an uninterrupted run ends."""
    topics = topics_factory(partitions=STAGE_PARTITIONS)
    sim = simulation(seed=29)
    half = len(sim.records) // 2
    states = readers(topics.parcel_state)
    first = stages.worker(topics, name="rocks", log_level="warning", store="rocksdb")
    publish_records(bootstrap_servers, topics, sim.records[:half])

    def processing() -> bool:
        states.poll()
        return len(states.records) >= 20

    wait_for(processing, 60, "the first worker's output", [first])
    first.kill()  # SIGKILL: its store and persisted offsets stay as the last acknowledged batch left them
    publish_records(bootstrap_servers, topics, sim.records[half:])
    second = stages.worker(topics, name="rocks", log_level="warning", store="rocksdb")  # the same data dir
    wait_for_truth(sim, states, [second], timeout=120)
    assert second.stop() == 0
