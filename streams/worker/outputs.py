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
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from schemas.kafka_clients import producer_config
from streams.worker.processor import Output

log = logging.getLogger(__name__)

#: Seconds a batch's outputs may take to be acknowledged before the batch fails (and is replayed
#: after the worker restarts): librdkafka's own delivery timeout (message.timeout.ms) is 30 s.
DELIVERY_TIMEOUT = 40.0


class PublishError(RuntimeError):
    """The broker refused an output, or did not acknowledge it in time."""


class Publisher(Protocol):
    async def publish(self, outputs: Sequence[Output]) -> None: ...

    async def stop(self) -> None: ...


async def publish(producer: Any, outputs: Sequence[Output]) -> None:
    """Send ``outputs`` through a Faust producer and wait until the broker acknowledged every one;
    raises the first send error. Straight to the producer (Faust's Topic.send adds per-message
    bookkeeping we do not use). Awaiting ``send`` only enqueues the record, and Faust's ``flush``
    before a commit never raises: without waiting here, an output the broker refused would vanish
    while its input's offset is committed and its state stored as applied."""
    send = producer.send
    pending = [
        await send(output.topic, output.key, output.value, None, None, list(output.headers) if output.headers else None)
        for output in outputs
    ]
    if pending:
        await asyncio.gather(*pending)


class FaustPublisher:
    """Outputs through the Faust app's (aiokafka) producer."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def publish(self, outputs: Sequence[Output]) -> None:
        await publish(self.app.producer, outputs)

    async def stop(self) -> None:
        pass  # Faust stops its producer


class LibrdkafkaPublisher:
    """Outputs through a confluent-kafka producer, delivery awaited per batch."""

    def __init__(self, bootstrap_servers: str, **overrides: Any) -> None:
        self.producer = Producer(producer_config(bootstrap_servers, **overrides))
        self._errors: list[KafkaError] = []

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        # Runs in the thread that flushes (librdkafka serves delivery reports from flush/poll).
        if error is not None:
            self._errors.append(error)

    async def publish(self, outputs: Sequence[Output]) -> None:
        """Send ``outputs`` and return once the broker acknowledged all of them; raises
        ``PublishError`` for the first refused one (the batch then fails and is replayed)."""
        if not outputs:
            return
        produce, delivered = self.producer.produce, self._delivered
        for output in outputs:
            while True:
                try:
                    headers = list(output.headers) if output.headers else None
                    produce(output.topic, output.value, output.key, headers=headers, on_delivery=delivered)
                    break
                except BufferError:  # librdkafka's queue is full: let it drain, then go on
                    await asyncio.get_running_loop().run_in_executor(None, self.producer.poll, 0.05)
        remaining = await asyncio.get_running_loop().run_in_executor(None, self.producer.flush, DELIVERY_TIMEOUT)
        errors, self._errors = self._errors, []
        if errors:
            raise PublishError(f"{len(errors)} of {len(outputs)} outputs refused, first: {errors[0].str()}")
        if remaining:
            raise PublishError(f"{remaining} outputs not acknowledged within {DELIVERY_TIMEOUT:.0f} s")

    async def stop(self) -> None:
        # Everything published was flushed already; a batch cut short is not committed either.
        try:
            await asyncio.get_running_loop().run_in_executor(None, self.producer.flush, 5.0)
        except KafkaException as error:  # stopping anyway
            log.warning("output producer: %s", error)


def create_publisher(kind: str, bootstrap_servers: str, app: Any) -> Publisher:
    """The publisher named by ``WorkerSettings.output_producer``."""
    if kind == "faust":
        return FaustPublisher(app)
    return LibrdkafkaPublisher(bootstrap_servers)
