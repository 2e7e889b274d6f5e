"""The carrier publisher: Avro-encodes scans and manifests and publishes them with an idempotent
producer (acks=all, enable.idempotence), checking every delivery report.

Keys (see ``schemas/topics.py``): a parcel scan is keyed by its tracking number; a handling-unit
scan and a manifest by the unit id, so the stream processor sees a unit's scans and membership in
one partition and can fan them out to the parcels inside.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from schemas.codec import Codec, EncodeError, default_codec
from schemas.topics import KEY_PARTITIONER, TopicNames


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


def producer_config(bootstrap_servers: str, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap_servers,
        "enable.idempotence": True,
        "acks": "all",
        "partitioner": KEY_PARTITIONER,
        "linger.ms": 5,
        "compression.type": "lz4",
        "message.timeout.ms": 30_000,
        "log_level": 3,
    }
    config.update(overrides)
    return config


class Publisher:
    """Publish scans, manifests and dead letters; ``flush()`` returns the delivery report.

    ``reference`` (for example ``file.jsonl:12``) names a record in failure reports.
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

    def _on_delivery(self, reference: str) -> Any:
        def callback(error: KafkaError | None, message: Message) -> None:
            topic = message.topic() or "?"
            if error is not None:
                self.report.failures.append(DeliveryFailure(reference, topic, error.str()))
            else:
                self.report.acknowledged[topic] = self.report.acknowledged.get(topic, 0) + 1

        return callback

    def _produce(self, topic: str, key: bytes | None, value: bytes, reference: str) -> None:
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=self._on_delivery(reference))
                break
            except BufferError:
                # Local queue full: serve delivery reports to make room, then retry.
                self._producer.poll(0.1)
        self._producer.poll(0)

    def publish_scan(self, scan: Mapping[str, Any], reference: str = "") -> None:
        value = self.codec.encode("ScanEvent", scan)
        self._produce(self.topics.scans, scan_key(scan).encode(), value, reference or scan["event_id"])

    def publish_manifest(self, manifest: Mapping[str, Any], reference: str = "") -> None:
        value = self.codec.encode("Manifest", manifest)
        key = str(manifest["handling_unit"]).encode()
        self._produce(self.topics.manifests, key, value, reference or manifest["manifest_id"])

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
        dead_letter = {
            "dead_letter_id": hashlib.sha256(
                b"%s|%s|%s" % (self.stage.encode(), (source_reference or "").encode(), payload)
            ).hexdigest()[:32],
            "stage": self.stage,
            "reason_code": reason_code,
            "reason": reason,
            "source_topic": source_topic,
            "source_partition": source_partition,
            "source_offset": source_offset,
            "source_reference": source_reference,
            "key": key,
            "payload": payload,
            "recorded_time_ms": now_ms(),
        }
        value = self.codec.encode("DeadLetter", dead_letter)
        self._produce(self.topics.dead_letters, key, value, source_reference or "dead-letter")

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
