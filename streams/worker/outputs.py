"""How the worker publishes a batch's outputs (ParcelStates, status updates, SLA events, fan-out
copies, dead letters): ``await publisher.publish(outputs)`` returns once the broker acknowledged
every one of them, or raises; the agent returns (and Faust may commit the batch's input offsets)
only after that. With ``LibrdkafkaPublisher`` the table changelogs go through its producer too
(streams/worker/changelog.py); ``sla-due`` stays on Faust's producer.

- ``LibrdkafkaPublisher`` (the default, ``PARCELSTREAM_OUTPUT_PRODUCER=librdkafka``): a
  confluent-kafka producer with the pipeline's reliable settings (schemas/kafka_clients.py:
  idempotent, acks=all, murmur2 keys). Profiled under the benchmark, aiokafka's pure-Python
  producer (send futures, partitioner, batch building, produce requests) was the largest cost
  outside the core; librdkafka does that work in C threads. One flush per batch waits for the
  deliveries in a thread of the loop's executor.
- ``FaustPublisher`` (``faust``): Faust's aiokafka producer, each send's future awaited.

Either returns the outputs of its ``watched`` topic (the worker watches ``scans-fanout``) as the
broker stored them, with partition and offset: what a consumer of that topic will read
(streams/worker/loopback.py applies the fan-out copies of the worker's own partitions from there).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from functools import partial
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from schemas.kafka_clients import producer_config
from streams.worker.processor import Output, SourceMessage

log = logging.getLogger(__name__)

#: Seconds a batch's outputs may take to be acknowledged before the batch fails (and is replayed
#: after the worker restarts): librdkafka's own delivery timeout (message.timeout.ms) is 30 s.
DELIVERY_TIMEOUT = 40.0


class PublishError(RuntimeError):
    """The broker refused an output, or did not acknowledge it in time."""


class Publisher(Protocol):
    async def publish(self, outputs: Sequence[Output]) -> list[SourceMessage]: ...

    async def stop(self) -> None: ...


async def publish(producer: Any, outputs: Sequence[Output], watched: str | None = None) -> list[SourceMessage]:
    """Send ``outputs`` through a Faust producer and wait until the broker acknowledged every one;
    raises the first send error. Returns the outputs of topic ``watched`` as stored. Straight to
    the producer (Faust's Topic.send adds per-message bookkeeping we do not use). Awaiting
    ``send`` only enqueues the record, and Faust's ``flush`` before a commit never raises: without
    waiting here, an output the broker refused would vanish while its input's offset is committed
    and its state stored as applied."""
    send = producer.send
    pending = [
        await send(output.topic, output.key, output.value, None, None, list(output.headers) if output.headers else None)
        for output in outputs
    ]
    if not pending:
        return []
    stored = await asyncio.gather(*pending)
    return [
        SourceMessage(output.topic, metadata.partition, metadata.offset, output.key, output.value, output.headers or ())
        for output, metadata in zip(outputs, stored, strict=True)
        if output.topic == watched
    ]


class FaustPublisher:
    """Outputs through the Faust app's (aiokafka) producer."""

    def __init__(self, app: Any, watched: str | None = None) -> None:
        self.app = app
        self.watched = watched

    async def publish(self, outputs: Sequence[Output]) -> list[SourceMessage]:
        return await publish(self.app.producer, outputs, self.watched)

    async def stop(self) -> None:
        pass  # Faust stops its producer


class LibrdkafkaPublisher:
    """Outputs through a confluent-kafka producer, delivery awaited per batch."""

    def __init__(self, bootstrap_servers: str, watched: str | None = None, **overrides: Any) -> None:
        self.producer = Producer(producer_config(bootstrap_servers, **overrides))
        self.watched = watched
        self._errors: list[KafkaError] = []
        self._stored: list[SourceMessage] = []

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        # Runs in the thread that flushes (librdkafka serves delivery reports from flush/poll).
        if error is not None:
            self._errors.append(error)

    def _watched_delivered(self, output: Output, error: KafkaError | None, message: Message) -> None:
        # A delivery report carries partition and offset but not the headers (a copy's fan-out path).
        if error is not None:
            self._errors.append(error)
        else:
            stored = SourceMessage(
                output.topic, message.partition(), message.offset(), output.key, output.value, output.headers or ()
            )
            self._stored.append(stored)

    async def publish(self, outputs: Sequence[Output]) -> list[SourceMessage]:
        """Send ``outputs`` and return once the broker acknowledged all of them, with the ones of
        the watched topic as stored; raises ``PublishError`` for the first refused one (the batch
        then fails and is replayed)."""
        if not outputs:
            return []
        produce, delivered, watched = self.producer.produce, self._delivered, self.watched
        for output in outputs:
            on_delivery = delivered if output.topic != watched else partial(self._watched_delivered, output)
            while True:
                try:
                    headers = list(output.headers) if output.headers else None
                    produce(output.topic, output.value, output.key, headers=headers, on_delivery=on_delivery)
                    break
                except BufferError:  # librdkafka's queue is full: let it drain, then go on
                    await asyncio.get_running_loop().run_in_executor(None, self.producer.poll, 0.05)
        remaining = await asyncio.get_running_loop().run_in_executor(None, self.producer.flush, DELIVERY_TIMEOUT)
        errors, self._errors = self._errors, []
        stored, self._stored = self._stored, []
        if errors:
            raise PublishError(f"{len(errors)} of {len(outputs)} outputs refused, first: {errors[0].str()}")
        if remaining:
            raise PublishError(f"{remaining} outputs not acknowledged within {DELIVERY_TIMEOUT:.0f} s")
        return stored

    async def stop(self) -> None:
        # Everything published was flushed already; a batch cut short is not committed either.
        try:
            await asyncio.get_running_loop().run_in_executor(None, self.producer.flush, 5.0)
        except KafkaException as error:  # stopping anyway
            log.warning("output producer: %s", error)


def create_publisher(kind: str, bootstrap_servers: str, app: Any, watched: str | None = None) -> Publisher:
    """The publisher named by ``WorkerSettings.output_producer``, returning the outputs of ``watched`` as stored."""
    if kind == "faust":
        return FaustPublisher(app, watched)
    return LibrdkafkaPublisher(bootstrap_servers, watched)
