"""The worker's librdkafka output publisher on a real broker: delivered when ``publish`` returns, in the key's
murmur2 partition (where Faust's producer put it), in order; a refused output fails the batch."""

from __future__ import annotations

import asyncio
import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from deploy.embedded import free_port
from schemas.topics import TopicNames
from streams.worker.agents import key_partition
from streams.worker.outputs import LibrdkafkaPublisher, PublishError
from streams.worker.processor import Output
from tests.stages import unique

Record = tuple[int, bytes, bytes, list[tuple[str, bytes]] | None]


def read_all(bootstrap_servers: str, topic: str, partitions: int) -> list[Record]:
    """(partition, key, value, headers) of every record now in ``topic``: what was acknowledged before the call."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": unique("reader"),
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "log_level": 0,
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    records: list[Record] = []
    at_end: set[int] = set()
    deadline = time.monotonic() + 20
    try:
        while len(at_end) < partitions and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=1000, timeout=0.2):
                error = message.error()
                if error is None:
                    records.append((message.partition(), message.key(), message.value(), message.headers()))
                elif error.code() == KafkaError._PARTITION_EOF:
                    at_end.add(message.partition())
    finally:
        consumer.close()
    assert len(at_end) == partitions, "the topic was not read to its end"
    return records


def test_outputs_are_acknowledged_when_publish_returns_in_their_keys_partitions_in_order(
    bootstrap_servers: str, topics: TopicNames
) -> None:
    keys = [f"LP{n:09d}CN".encode() for n in range(40)]
    outputs = [Output(topics.status_updates, key, b"%s:%d" % (key, n)) for n in range(5) for key in keys]
    outputs[0] = Output(topics.status_updates, keys[0], b"%s:0" % keys[0], (("parcelstream-fanout-path", b"BAG1"),))
    publisher = LibrdkafkaPublisher(bootstrap_servers)

    async def publish() -> None:
        await publisher.publish(outputs[:100])
        await publisher.publish(outputs[100:])
        await publisher.stop()

    asyncio.run(publish())
    records = read_all(bootstrap_servers, topics.status_updates, 4)  # no waiting: already acknowledged
    assert len(records) == len(outputs)
    for partition, key, _value, _headers in records:
        assert partition == key_partition(key.decode(), 4)
    for key in keys:
        assert [value for _p, k, value, _h in records if k == key] == [b"%s:%d" % (key, n) for n in range(5)]
    headers = {value: headers for _p, _k, value, headers in records}
    assert headers[b"%s:0" % keys[0]] == [("parcelstream-fanout-path", b"BAG1")]  # fan-out copies keep their path


def test_an_output_the_broker_does_not_acknowledge_fails_the_batch() -> None:
    publisher = LibrdkafkaPublisher(f"127.0.0.1:{free_port()}", **{"message.timeout.ms": 500, "log_level": 0})
    with pytest.raises(PublishError, match="2 of 2 outputs refused"):
        asyncio.run(publisher.publish([Output("t.status-updates", b"k", b"v"), Output("t.sla-events", b"k", b"v")]))
