"""The Kafka side: StatusUpdates → notification jobs in the Redis outbox, then commit.

Offsets are committed by hand, only after every job of the batch is in the outbox (or the record is
on the dead-letter topic). A crash before the commit replays the batch; the outbox's idempotency keys
turn the replay into no-ops, so no update is lost and none is notified twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from consumers.metrics import NOTIFICATIONS
from consumers.notifier.dead_letters import DeadLetterError, DeadLetterProducer
from consumers.notifier.model import jobs_for_update
from consumers.notifier.store import OutboxWriter, SubscriptionStore
from schemas.codec import Codec, DecodeError, default_codec
from schemas.dead_letters import PROCESSING_ERROR, processing_error_reason
from schemas.kafka_clients import consumer_config

log = logging.getLogger(__name__)


@dataclass
class ConsumerStats:
    updates: int = 0
    enqueued: int = 0
    duplicates: int = 0
    dead_lettered: int = 0


class UpdateConsumer:
    def __init__(
        self,
        *,
        bootstrap_servers: str,
        topic: str,
        group_id: str,
        subscriptions: SubscriptionStore,
        outbox: OutboxWriter,
        dead_letters: DeadLetterProducer,
        consumer_overrides: dict[str, Any] | None = None,
        codec: Codec | None = None,
        clock: Callable[[], float] = time.time,
        batch_size: int = 500,
    ) -> None:
        self.topic = topic
        self.subscriptions = subscriptions
        self.outbox = outbox
        self.dead_letters = dead_letters
        self.codec = codec or default_codec()
        self.clock = clock
        self.batch_size = batch_size
        self.stats = ConsumerStats()
        self.config: dict[str, Any] = consumer_config(bootstrap_servers, group_id, **(consumer_overrides or {}))

    def handle(self, message: Message) -> None:
        """Turn one record into outbox jobs, or a dead letter when it is not a StatusUpdate."""
        try:
            update = self.codec.decode(message.value() or b"", expect="StatusUpdate").value
        except DecodeError as error:
            self._dead_letter(message, error.reason_code, error.reason)
            return
        self.stats.updates += 1
        try:
            candidates = self.subscriptions.for_update(update.get("merchant"), update["tracking_number"])
            if candidates:
                update["movement"] = self.subscriptions.movement_of(update["tracking_number"])
            for job in jobs_for_update(update, candidates, int(self.clock() * 1000)):
                if self.outbox.enqueue(job):
                    self.stats.enqueued += 1
                else:
                    self.stats.duplicates += 1
                    NOTIFICATIONS.labels(channel=job.channel, outcome="skipped_duplicate").inc()
        except (redis.RedisError, DeadLetterError):
            raise  # the store, not the record: the batch is retried
        except Exception as error:  # one bad record must not stop the stage (e.g. a date in year 9999)
            # Jobs enqueued before the error stay: each is delivered once, by its idempotency key.
            self._dead_letter(message, PROCESSING_ERROR, processing_error_reason(error))
            log.warning("notifier: dead-lettered a status update whose handling raised %s", type(error).__name__)

    def _dead_letter(self, message: Message, reason_code: str, reason: str) -> None:
        self.dead_letters.publish(
            reason_code=reason_code,
            reason=f"{message.topic()}[{message.partition()}]@{message.offset()}: {reason}",
            payload=message.value() or b"",
            key=message.key(),
            source_topic=message.topic(),
            source_partition=message.partition(),
            source_offset=message.offset(),
        )
        self.stats.dead_lettered += 1

    def _handle_batch(self, messages: list[Message], stop: threading.Event) -> bool:
        """Handle every record, retrying the whole (idempotent) batch while Redis or the broker fails."""
        while True:
            try:
                for message in messages:
                    self.handle(message)
                return True
            except (redis.RedisError, DeadLetterError) as error:
                log.warning("notifier: cannot store notifications (%s); retrying the batch", error)
                if stop.wait(1.0):
                    return False

    def run(self, stop: threading.Event, on_assigned: Callable[[], None] | None = None) -> ConsumerStats:
        def assigned(_consumer: Consumer, partitions: list[TopicPartition]) -> None:
            log.info("notifier: assigned %d partition(s) of %s", len(partitions), self.topic)
            if on_assigned is not None:
                on_assigned()

        consumer = Consumer(self.config)
        consumer.subscribe([self.topic], on_assign=assigned)
        try:
            while not stop.is_set():
                polled = consumer.consume(num_messages=self.batch_size, timeout=0.5)
                messages = []
                for message in polled:
                    error = message.error()
                    if error is None:
                        messages.append(message)
                    elif error.code() != KafkaError._PARTITION_EOF:
                        log.warning("notifier: consumer error: %s", error.str())
                if not messages:
                    continue
                if not self._handle_batch(messages, stop):
                    break  # stopping: leave the batch uncommitted, it is replayed on restart
                next_offsets: dict[tuple[str, int], int] = {}
                for message in messages:
                    next_offsets[(message.topic(), message.partition())] = message.offset() + 1
                try:
                    consumer.commit(
                        offsets=[TopicPartition(t, p, o) for (t, p), o in next_offsets.items()], asynchronous=False
                    )
                except KafkaException as error:
                    # E.g. a rebalance took the partition: the new owner replays, idempotently.
                    log.warning("notifier: commit failed (%s); the records will be replayed", error.args[0].str())
        finally:
            consumer.close()
        return self.stats
