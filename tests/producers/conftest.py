"""Fixtures of the producer tests: an independent reader of a topic (confluent-kafka's own Consumer,
assigned to every partition, no consumer group)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from schemas.codec import Decoded, default_codec


@dataclass(frozen=True)
class ReadMessage:
    key: bytes | None
    partition: int
    decoded: Decoded


def read_all(bootstrap_servers: str, topic: str, expected: int, timeout: float = 30.0) -> list[ReadMessage]:
    """Every message of ``topic``, decoded: waits for ``expected`` messages, then reads on until
    every partition reports its end, so extra messages are returned too (callers compare counts).

    End of partition is the consumer's EOF event, not ListOffsets: Tansu reports a high watermark
    one short when a partition got a multi-record batch.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"reader-{uuid.uuid4().hex[:10]}",  # required by the client; assign() joins no group
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "log_level": 0,
        }
    )
    try:
        partitions = set(consumer.list_topics(topic, timeout=timeout).topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        messages: list[ReadMessage] = []
        at_end: set[int] = set()
        deadline = time.monotonic() + timeout
        while len(messages) < expected or at_end != partitions:
            assert time.monotonic() < deadline, f"{topic}: read {len(messages)} of {expected} within {timeout} s"
            message = consumer.poll(0.5)
            if message is None:
                continue
            partition = message.partition()
            assert partition is not None
            error = message.error()
            if error is not None:
                assert error.code() == KafkaError._PARTITION_EOF, error.str()
                at_end.add(partition)
                continue
            at_end.discard(partition)
            value = message.value()
            assert value is not None
            messages.append(ReadMessage(message.key(), partition, default_codec().decode(value)))
        return messages
    finally:
        consumer.close()


@pytest.fixture
def read_topic(bootstrap_servers: str) -> Callable[[str, int], list[ReadMessage]]:
    """``read_topic(name, expected)``: every message of the topic, decoded with schemas.codec."""

    def read(topic: str, expected: int) -> list[ReadMessage]:
        return read_all(bootstrap_servers, topic, expected)

    return read
