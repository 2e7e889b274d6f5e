"""Table changelog records through librdkafka (the worker's output producer) instead of Faust's
aiokafka producer.

Profiled under the benchmark, Faust's changelog path (a ``FutureMessage`` per write, its producer
buffer's task, aiokafka's pure-Python accumulator, sender and connection writes) was the largest
cost of the Faust shell: about one changelog record per input. ``AckedTable`` (agents.py) hands
each write to ``LibrdkafkaChangelog.produce`` instead: the same changelog topic and partition
(the partition of the event that writes the key, as Faust chooses it), the same key bytes (by
the table's key serializer, JSON: ``"LP…"``: recovery decodes them with it, and compaction needs
the keys Faust wrote before) and value bytes (Faust passes bytes as they are; a tombstone is a
``None`` value). The batch then awaits ``acked``: one flush of the producer, after which every
record was acknowledged or the batch fails.

Faust's ``Table._on_changelog_sent`` keeps, per table partition, the offset of the last
acknowledged changelog record in the store (RocksDB: recovery after a restart reads only the
records past it; the memory store keeps nothing). ``acked`` does the same from the delivery
reports, on the event loop's thread once the flush returned (RocksDB is written by that thread
only, as with Faust).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from confluent_kafka import KafkaError, Message, Producer
from faust.types import TP

from streams.worker.outputs import DELIVERY_TIMEOUT


class ChangelogError(RuntimeError):
    """The broker refused a changelog record, or did not acknowledge it in time."""


class LibrdkafkaChangelog:
    """Changelog records of several tables through one confluent-kafka producer."""

    def __init__(self, producer: Producer) -> None:
        self.producer = producer
        #: Per changelog topic, what to call with each partition's last acknowledged offset.
        self._on_acknowledged: dict[str, Callable[[TP, int], None]] = {}
        self._produced = 0
        # Filled by delivery reports, in the thread that flushes (librdkafka serves them from flush/poll).
        self._acknowledged: dict[tuple[str, int], int] = {}
        self._errors: list[KafkaError] = []

    def register(self, topic: str, on_acknowledged: Callable[[TP, int], None]) -> None:
        """After each ``acked``, call ``on_acknowledged`` with the last acknowledged offset of each
        partition of ``topic`` that had records (from the event loop's thread)."""
        self._on_acknowledged[topic] = on_acknowledged

    def produce(self, topic: str, partition: int, key: bytes, value: bytes | None) -> None:
        """Enqueue a changelog record; ``acked`` waits for it."""
        produce = self.producer.produce
        while True:
            try:
                produce(topic, value, key, partition=partition, on_delivery=self._delivered)
                break
            except BufferError:  # librdkafka's queue is full (a batch far over its 100k messages)
                self.producer.poll(0.05)
        self._produced += 1

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._errors.append(error)
            return
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        # Reports come in order per partition; max() anyway, as Faust keeps the last record's offset.
        if topic is not None and partition is not None and offset is not None:
            self._acknowledged[topic, partition] = max(offset, self._acknowledged.get((topic, partition), -1))

    async def acked(self) -> None:
        """Return once the broker acknowledged every record produced since the last call, with the
        stores' persisted offsets moved to them; raises ``ChangelogError`` for a refused one."""
        if not self._produced:
            return
        produced, self._produced = self._produced, 0
        remaining = await asyncio.get_running_loop().run_in_executor(None, self.producer.flush, DELIVERY_TIMEOUT)
        acknowledged, self._acknowledged = self._acknowledged, {}
        errors, self._errors = self._errors, []
        for (topic, partition), offset in acknowledged.items():
            on_acknowledged = self._on_acknowledged.get(topic)
            if on_acknowledged is not None:
                on_acknowledged(TP(topic, partition), offset)
        if errors:
            raise ChangelogError(f"{len(errors)} of {produced} changelog records refused, first: {errors[0].str()}")
        if remaining:
            raise ChangelogError(f"{remaining} records not acknowledged within {DELIVERY_TIMEOUT:.0f} s (changelogs)")
