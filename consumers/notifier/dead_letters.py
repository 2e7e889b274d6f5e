"""Dead letters of the notifier (stage ``notifier``): undecodable input and undeliverable notifications."""

from __future__ import annotations

import threading

from confluent_kafka import KafkaError, Message, Producer

from consumers.metrics import DEAD_LETTERS
from schemas.codec import Codec, default_codec
from schemas.dead_letters import dead_letter_record
from schemas.kafka_clients import producer_config

STAGE = "notifier"


class DeadLetterError(RuntimeError):
    """The broker did not acknowledge a dead letter: the caller must not consider the record handled."""


class DeadLetterProducer:
    """Publishes DeadLetter records and waits for the broker's acknowledgement (acks=all, idempotent)."""

    def __init__(self, bootstrap_servers: str, topic: str, codec: Codec | None = None) -> None:
        self.topic = topic
        self.codec = codec or default_codec()
        self._producer = Producer(producer_config(bootstrap_servers))
        self._lock = threading.Lock()

    def publish(
        self,
        *,
        reason_code: str,
        reason: str,
        payload: bytes,
        key: bytes | None,
        dead_letter_id: str | None = None,
        source_topic: str | None = None,
        source_partition: int | None = None,
        source_offset: int | None = None,
        source_reference: str | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        """Publish one dead letter and block until the broker acknowledges it."""
        record = dead_letter_record(
            stage=STAGE,
            reason_code=reason_code,
            reason=reason,
            payload=payload,
            key=key,
            source_topic=source_topic,
            source_partition=source_partition,
            source_offset=source_offset,
            source_reference=source_reference,
        )
        if dead_letter_id:
            record["dead_letter_id"] = dead_letter_id
        errors: list[str] = []
        done = threading.Event()

        def on_delivery(error: KafkaError | None, _message: Message) -> None:
            if error is not None:
                errors.append(error.str())
            done.set()

        with self._lock:
            self._producer.produce(
                self.topic, value=self.codec.encode("DeadLetter", record), key=key, on_delivery=on_delivery
            )
            self._producer.flush(timeout_s)
        if not done.is_set() or errors:
            raise DeadLetterError(f"dead letter not acknowledged: {errors[0] if errors else 'timed out'}")
        DEAD_LETTERS.labels(stage=STAGE, reason_code=reason_code).inc()
