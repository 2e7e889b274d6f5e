"""The Kafka side: StatusUpdates → notification jobs in the Redis outbox, then commit; ParcelCommands
(a customer's erasure, ``<prefix>.parcel-commands``) → the parcel's notifier data deleted.

Offsets are committed by hand, only after every job of the batch is in the outbox (or the record is
on the dead-letter topic). A crash before the commit replays the batch; the outbox's idempotency keys
turn the replay into no-ops, so no update is lost and none is notified twice. A replayed erasure
finds nothing left to delete.
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
from schemas.erasure import AUDIT_LOGGER, erased_key
from schemas.kafka_clients import consumer_config

log = logging.getLogger(__name__)
audit = logging.getLogger(AUDIT_LOGGER)


@dataclass
class ConsumerStats:
    updates: int = 0
    enqueued: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    erasures: int = 0


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
        commands_topic: str | None = None,
    ) -> None:
        self.topic = topic
        self.commands_topic = commands_topic
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
        if self.commands_topic is not None and message.topic() == self.commands_topic:
            self.handle_command(message)
            return
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

    def handle_command(self, message: Message) -> None:
        """A ParcelCommand: ``erase`` deletes the parcel's subscriptions (tracking-number scope), queued
        notifications and idempotency keys; a bad command is dead-lettered. The worker refuses a command
        keyed by another parcel (``wrong_key``), so the notifier refuses it too."""
        try:
            command = self.codec.decode(message.value() or b"", expect="ParcelCommand").value
        except DecodeError as error:
            self._dead_letter(message, error.reason_code, error.reason)
            return
        tracking_number = command["tracking_number"]
        key = message.key()
        if key is not None and key != tracking_number.encode():
            reason = f"command keyed {key!r}; the key must be its tracking number"
            self._dead_letter(message, "wrong_key", reason)
            return
        try:
            subscriptions = self.subscriptions.erase_tracking_number(tracking_number)
            queued, idempotency_keys = self.outbox.erase_parcel(tracking_number)
        except redis.RedisError:
            raise  # the store, not the record: the batch is retried
        except Exception as error:
            self._dead_letter(message, PROCESSING_ERROR, processing_error_reason(error))
            log.warning("notifier: dead-lettered a parcel command whose handling raised %s", type(error).__name__)
            return
        self.stats.erasures += 1
        # Named by the worker's hash only (schemas/erasure.py): the audit trail holds no personal data.
        audit.info(
            "notifier erased parcel %s: command %s, reason %r, %d subscription(s), %d queued notification(s), "
            "%d idempotency key(s), at %d",
            erased_key(tracking_number),
            command["command_id"],
            command["reason"],
            subscriptions,
            queued,
            idempotency_keys,
            int(self.clock() * 1000),
        )

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
        topics = [self.topic] + ([self.commands_topic] if self.commands_topic else [])
        consumer.subscribe(topics, on_assign=assigned)
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
