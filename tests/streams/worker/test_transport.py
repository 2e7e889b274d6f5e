"""Changelog end offsets read from a fetch (streams/worker/transport.py), on the real broker."""

from __future__ import annotations

import asyncio

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from streams.settings import WorkerSettings
from streams.worker.app import create_app
from streams.worker.transport import EndOffsetsError, fetched_end_offsets
from tests.conftest import unique

pytestmark = pytest.mark.integration


def compacted_topic(bootstrap_servers: str, partitions: int) -> str:
    name = unique("changelog")
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    config = {"cleanup.policy": "compact", "retention.ms": "-1"}
    admin.create_topics([NewTopic(name, partitions, 1, config=config)])[name].result(timeout=15)
    return name


def produce_batches(bootstrap_servers: str, topic: str, partition: int, batches: int, per_batch: int) -> None:
    """``batches`` produce requests of ``per_batch`` records each: flushing between them keeps the
    batches apart."""
    producer = Producer({"bootstrap.servers": bootstrap_servers, "linger.ms": 50, "enable.idempotence": True})
    for batch in range(batches):
        for record in range(per_batch):
            producer.produce(topic, key=f"k{batch}-{record}", value=b"state", partition=partition)
        assert producer.flush(15) == 0


def test_the_end_offset_counts_every_record_of_the_last_batch(bootstrap_servers: str) -> None:
    topic = compacted_topic(bootstrap_servers, partitions=3)
    produce_batches(bootstrap_servers, topic, partition=0, batches=5, per_batch=3)
    produce_batches(bootstrap_servers, topic, partition=1, batches=1, per_batch=4)

    # What the broker's ListOffsets says is the starting point; on Tansu it is 13 and 1 here.
    reported = {(topic, 0): 13, (topic, 1): 1, (topic, 2): 0}
    assert fetched_end_offsets(bootstrap_servers, reported) == {(topic, 0): 15, (topic, 1): 4, (topic, 2): 0}


def test_a_right_answer_is_kept(bootstrap_servers: str) -> None:
    topic = compacted_topic(bootstrap_servers, partitions=1)
    produce_batches(bootstrap_servers, topic, partition=0, batches=2, per_batch=2)

    assert fetched_end_offsets(bootstrap_servers, {(topic, 0): 4}) == {(topic, 0): 4}


def test_an_unreachable_broker_is_a_clear_error() -> None:
    with pytest.raises(EndOffsetsError, match="no fetch answer within 1 s"):
        fetched_end_offsets("127.0.0.1:1", {("changelog", 0): 5}, timeout=1.0)


def test_the_workers_fetch_long_poll_is_its_setting_not_fausts_fixed_one() -> None:
    async def fetch_max_wait_ms(settings: WorkerSettings) -> int:
        app = create_app(settings)
        consumer = app.consumer._thread._create_worker_consumer(app.transport)
        try:
            return int(consumer._fetch_max_wait_ms)
        finally:
            await consumer.stop()

    assert asyncio.run(fetch_max_wait_ms(WorkerSettings(topic_prefix=unique("t"), fetch_max_wait=0.05))) == 50
    assert asyncio.run(fetch_max_wait_ms(WorkerSettings(topic_prefix=unique("t")))) == 100
