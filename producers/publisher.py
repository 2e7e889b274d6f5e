"""The carrier publisher: Avro-encodes scans and manifests and publishes them with an idempotent
producer (acks=all, enable.idempotence), checking every delivery report.

Keys (see ``schemas/topics.py``): a parcel scan is keyed by its tracking number; a handling-unit
scan and a manifest by the unit id, so the stream processor sees a unit's scans and membership in
one partition and can fan them out to the parcels inside.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from schemas.codec import Codec, EncodeError, default_codec
from schemas.dead_letters import dead_letter_record
from schemas.kafka_clients import producer_config
from schemas.topics import TopicNames


class PublishError(RuntimeError):
    """Some records were not acknowledged by the broker."""


def scan_key(scan: Mapping[str, Any]) -> str:
    """Tracking number for a parcel scan; handling unit id for a bag/ULD/container scan."""
    key = scan.get("tracking_number") or scan.get("handling_unit")
    if not key:
        raise EncodeError("ScanEvent", ["a scan needs a tracking_number or a handling_unit"])
    return str(key)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class DeliveryFailure:
    reference: str
    topic: str
    error: str


@dataclass
class DeliveryReport:
    """What the broker acknowledged, per topic, and what it refused (with the caller's reference)."""

    acknowledged: dict[str, int] = field(default_factory=dict)
    failures: list[DeliveryFailure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


class PublishBatch:
    """Records published together whose delivery is awaited together: ``wait()`` returns the report
    of this batch only, while other batches of the same Publisher (e.g. concurrent HTTP requests)
    are in flight. Delivery reports also count in the Publisher's cumulative ``report``.
    """

    def __init__(self, publisher: Publisher) -> None:
        self._publisher = publisher
        self.report = DeliveryReport()
        self._pending: dict[int, tuple[str, str]] = {}  # sequence number → (reference, topic)
        self._next = 0
        self._done = threading.Condition()

    def publish_scan(self, scan: Mapping[str, Any], reference: str = "") -> None:
        self._publisher._produce(*self._publisher._scan_message(scan, reference), batch=self)

    def publish_manifest(self, manifest: Mapping[str, Any], reference: str = "") -> None:
        self._publisher._produce(*self._publisher._manifest_message(manifest, reference), batch=self)

    def publish_dead_letter(self, **dead_letter: Any) -> None:
        """Same keyword arguments as ``Publisher.publish_dead_letter``."""
        self._publisher._produce(*self._publisher._dead_letter_message(**dead_letter), batch=self)

    @property
    def pending(self) -> int:
        with self._done:
            return len(self._pending)

    def _sent(self, reference: str, topic: str) -> int:
        with self._done:
            sequence = self._next
            self._next += 1
            self._pending[sequence] = (reference, topic)
            return sequence

    def _delivered(self, sequence: int, topic: str, error: str | None) -> None:
        with self._done:
            if sequence not in self._pending:
                return  # already counted as not acknowledged by wait()
            reference, _ = self._pending.pop(sequence)
            if error is not None:
                self.report.failures.append(DeliveryFailure(reference, topic, error))
            else:
                self.report.acknowledged[topic] = self.report.acknowledged.get(topic, 0) + 1
            self._done.notify_all()

    def wait(self, timeout: float = 30.0) -> DeliveryReport:
        """Block until every record of this batch has a delivery report, or ``timeout`` seconds pass;
        records still unreported then count as failures (each with its reference)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            with self._done:
                if not self._pending or remaining <= 0:
                    break
            # Serving callbacks here (or in another thread's poll) completes our records; the short
            # poll keeps us checking when another thread served them.
            self._publisher._producer.poll(min(remaining, 0.05))
        with self._done:
            for reference, topic in self._pending.values():
                self.report.failures.append(DeliveryFailure(reference, topic, f"not acknowledged within {timeout:g} s"))
            self._pending.clear()
            return self.report


class Publisher:
    """Publish scans, manifests and dead letters; ``flush()`` returns the delivery report.

    ``reference`` (for example ``file.jsonl:12``) names a record in failure reports. ``batch()``
    groups records whose delivery is awaited together (a report per batch, thread-safe).
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topics: TopicNames,
        *,
        codec: Codec | None = None,
        stage: str = "producer",
        **producer_overrides: Any,
    ) -> None:
        self.topics = topics
        self.codec = codec or default_codec()
        self.stage = stage
        self._producer = Producer(producer_config(bootstrap_servers, **producer_overrides))
        self.report = DeliveryReport()

    def batch(self) -> PublishBatch:
        """A new batch: publish through it, then ``wait()`` for its own delivery report."""
        return PublishBatch(self)

    def _on_delivery(self, reference: str, batch: PublishBatch | None, sequence: int) -> Any:
        def callback(error: KafkaError | None, message: Message) -> None:
            topic = message.topic() or "?"
            if error is not None:
                self.report.failures.append(DeliveryFailure(reference, topic, error.str()))
            else:
                self.report.acknowledged[topic] = self.report.acknowledged.get(topic, 0) + 1
            if batch is not None:
                batch._delivered(sequence, topic, None if error is None else error.str())

        return callback

    def _produce(
        self, topic: str, key: bytes | None, value: bytes, reference: str, *, batch: PublishBatch | None = None
    ) -> None:
        sequence = batch._sent(reference, topic) if batch is not None else -1
        callback = self._on_delivery(reference, batch, sequence)
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=callback)
                break
            except BufferError:
                # Local queue full: serve delivery reports to make room, then retry.
                self._producer.poll(0.1)
            except Exception as error:
                if batch is not None:  # never produced: it gets no delivery report
                    batch._delivered(sequence, topic, str(error))
                raise
        self._producer.poll(0)

    def _scan_message(self, scan: Mapping[str, Any], reference: str) -> tuple[str, bytes, bytes, str]:
        value = self.codec.encode("ScanEvent", scan)
        return self.topics.scans, scan_key(scan).encode(), value, reference or scan["event_id"]

    def _manifest_message(self, manifest: Mapping[str, Any], reference: str) -> tuple[str, bytes, bytes, str]:
        value = self.codec.encode("Manifest", manifest)
        key = str(manifest["handling_unit"]).encode()
        return self.topics.manifests, key, value, reference or manifest["manifest_id"]

    def publish_scan(self, scan: Mapping[str, Any], reference: str = "") -> None:
        self._produce(*self._scan_message(scan, reference))

    def publish_manifest(self, manifest: Mapping[str, Any], reference: str = "") -> None:
        self._produce(*self._manifest_message(manifest, reference))

    def publish_dead_letter(
        self,
        *,
        reason_code: str,
        reason: str,
        payload: bytes,
        key: bytes | None = None,
        source_reference: str | None = None,
        source_topic: str | None = None,
        source_partition: int | None = None,
        source_offset: int | None = None,
    ) -> None:
        self._produce(
            *self._dead_letter_message(
                reason_code=reason_code,
                reason=reason,
                payload=payload,
                key=key,
                source_reference=source_reference,
                source_topic=source_topic,
                source_partition=source_partition,
                source_offset=source_offset,
            )
        )

    def _dead_letter_message(
        self,
        *,
        reason_code: str,
        reason: str,
        payload: bytes,
        key: bytes | None = None,
        source_reference: str | None = None,
        source_topic: str | None = None,
        source_partition: int | None = None,
        source_offset: int | None = None,
    ) -> tuple[str, bytes | None, bytes, str]:
        dead_letter = dead_letter_record(
            stage=self.stage,
            reason_code=reason_code,
            reason=reason,
            payload=payload,
            key=key,
            source_topic=source_topic,
            source_partition=source_partition,
            source_offset=source_offset,
            source_reference=source_reference,
        )
        value = self.codec.encode("DeadLetter", dead_letter)
        return self.topics.dead_letters, key, value, source_reference or "dead-letter"

    def poll(self, timeout: float = 0) -> None:
        self._producer.poll(timeout)

    def flush(self, timeout: float = 30.0) -> DeliveryReport:
        """Wait for every outstanding delivery report; unreported records count as failures."""
        remaining = self._producer.flush(timeout)
        if remaining:
            self.report.failures.append(
                DeliveryFailure("(pending)", "?", f"{remaining} records not acknowledged within {timeout:.0f} s")
            )
        return self.report
