"""The projector: keeps the Redis read model (``consumers/read_model.py``) in step with ``parcel-state``.

A thin shell: it consumes in batches with a consumer group and auto-commit off, applies each batch
to Redis in one optimistic MULTI/EXEC (WATCH on the batch's parcels, so a consumer that lost its
partitions in a rebalance cannot write an older version over a newer one), and commits the offsets
only after Redis has the writes and every dead letter of the batch is acknowledged. A crash
therefore replays the batch, which the version check makes harmless.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from consumers import metrics
from consumers.backlog import BacklogGauges, read_backlog
from consumers.movements import MovementWriter, unit_scan_of
from consumers.read_model import (
    HOUR_MS,
    InvalidRecordError,
    Keys,
    ProjectedParcel,
    StoredIndexEntry,
    WritePlan,
    normalize_tracking_number,
    plan_delete,
    plan_write,
    project,
)
from consumers.settings import ConsumerSettings
from schemas.codec import Codec, DecodeError, default_codec
from schemas.dead_letters import PROCESSING_ERROR, dead_letter_record, processing_error_reason
from schemas.kafka_clients import consumer_config, producer_config
from schemas.statuses import STATUSES

STAGE = "projector"


class ProjectorError(RuntimeError):
    """The projector cannot go on; the message says why in one line."""


@dataclass
class ProjectorStats:
    messages: int = 0
    applied: int = 0
    stale: int = 0  # older or replayed versions that changed nothing
    deleted: int = 0
    dead_lettered: int = 0
    batches: int = 0
    movement_records: int = 0  # manifests and scans read for the movement board

    def summary(self) -> str:
        return (
            f"{self.messages:,} messages: {self.applied:,} states applied, {self.stale:,} older or replayed "
            f"ignored, {self.deleted:,} parcels deleted, {self.dead_lettered:,} dead-lettered"
        )


@dataclass
class ParcelChange:
    """The net effect of one batch on one parcel: optional delete (tombstone), then the newest state."""

    delete: bool = False
    state: ProjectedParcel | None = None


def reduce_batch(items: list[tuple[str, ProjectedParcel | None]]) -> dict[str, ParcelChange]:
    """Fold a batch (in offset order; None is a tombstone) into one change per parcel."""
    changes: dict[str, ParcelChange] = {}
    for tracking_number, state in items:
        change = changes.setdefault(tracking_number, ParcelChange())
        if state is None:
            change.delete, change.state = True, None
        elif change.state is None or state.version > change.state.version:
            change.state = state
    return changes


class DeadLetterSink:
    """Publishes DeadLetter records (stage "projector"); ``flush`` fails unless all are acknowledged."""

    def __init__(self, bootstrap_servers: str, topic: str, codec: Codec) -> None:
        self.topic = topic
        self.codec = codec
        self._failures: list[str] = []
        self._producer = Producer(producer_config(bootstrap_servers))

    def _on_delivery(self, error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            self._failures.append(error.str())

    def send(self, message: Message, reason_code: str, reason: str) -> None:
        payload = message.value() or b""
        dead_letter = dead_letter_record(
            stage=STAGE,
            reason_code=reason_code,
            reason=reason,
            payload=payload,
            key=message.key(),
            source_topic=message.topic(),
            source_partition=message.partition(),
            source_offset=message.offset(),
        )
        self._producer.produce(
            self.topic,
            key=message.key(),
            value=self.codec.encode("DeadLetter", dead_letter),
            on_delivery=self._on_delivery,
        )
        self._producer.poll(0)
        metrics.DEAD_LETTERS.labels(STAGE, reason_code).inc()

    def flush(self, timeout: float = 30.0) -> None:
        remaining = self._producer.flush(timeout)
        failures, self._failures = self._failures, []
        if remaining or failures:
            detail = failures[0] if failures else f"{remaining} not acknowledged within {timeout:.0f} s"
            raise ProjectorError(f"dead letters were not accepted by the broker ({detail}); offsets not committed")


def projector_consumer_config(settings: ConsumerSettings) -> dict[str, Any]:
    # Short session: a restarted projector gets its partitions back quickly.
    return consumer_config(
        settings.bootstrap_servers,
        settings.projector_group_id,
        **{"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000},
    )


class Projector:
    """Consume ``parcel-state`` into Redis until ``stop`` is set; ``run`` returns the totals."""

    def __init__(
        self,
        settings: ConsumerSettings,
        *,
        log: Callable[[str], None] = lambda _line: None,
        batch_size: int = 500,
        progress_interval: float = 10.0,
        backlog_interval: float = 2.0,
    ) -> None:
        self.settings = settings
        self.keys = Keys(settings.redis_prefix)
        self.postcode_key = settings.postcode_hash_key
        self.move_threshold_ms = int(settings.estimate_move_threshold_hours * HOUR_MS)
        self.codec = default_codec()
        self.log = log
        self.batch_size = batch_size
        self.progress_interval = progress_interval
        self.stats = ProjectorStats()
        self.redis = redis.Redis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=5)
        self.movements = (
            MovementWriter(self.redis, settings.redis_prefix, int(settings.movement_retention_days * 86400))
            if settings.projector_movements
            else None
        )
        self.backlog_gauges = BacklogGauges()
        self.backlog_interval = backlog_interval
        self._next_backlog = 0.0

    def run(self, stop: threading.Event) -> ProjectorStats:
        topic = self.settings.topics.parcel_state
        consumer = Consumer(projector_consumer_config(self.settings))
        dead_letters = DeadLetterSink(self.settings.bootstrap_servers, self.settings.topics.dead_letters, self.codec)
        topics = [topic]
        if self.movements is not None:  # the movement board also reads the units' manifests and scans
            topics += [self.settings.topics.manifests, self.settings.topics.scans]
        consumer.subscribe(topics)
        metrics.WORKER_UP.labels(STAGE).set(1)
        next_progress = next_lag = time.monotonic()
        try:
            self._retry_redis(self._refresh_status_counts, stop)
            self._retry_redis(self._refresh_backlog, stop)
            while not stop.is_set():
                messages = consumer.consume(self.batch_size, timeout=0.5)
                if messages:
                    self._process_batch(consumer, dead_letters, messages, stop)
                now = time.monotonic()
                if now >= next_lag:
                    self._record_lag(consumer)
                    next_lag = now + 10
                if now >= next_progress and self.stats.messages:
                    self.log(f"projector: {self.stats.summary()}")
                    next_progress = now + self.progress_interval
        finally:
            metrics.WORKER_UP.labels(STAGE).set(0)
            consumer.close()
            dead_letters.flush(5)
            self.redis.close()
        return self.stats

    def _process_batch(
        self, consumer: Consumer, dead_letters: DeadLetterSink, messages: list[Message], stop: threading.Event
    ) -> None:
        items: list[tuple[str, ProjectedParcel | None]] = []
        sources: dict[str, list[Message]] = {}  # the records behind each parcel's change
        offsets: dict[tuple[str, int], int] = {}
        movement_messages: list[Message] = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise ProjectorError(f"Kafka consumer failed: {error.str()}")
                self.log(f"projector: Kafka reports {error.str()}")
                continue
            offsets[(message.topic(), message.partition())] = message.offset() + 1
            if message.topic() != self.settings.topics.parcel_state:
                movement_messages.append(message)
                continue
            self.stats.messages += 1
            try:
                item = self._decode(message)
            except InvalidRecordError as invalid:
                dead_letters.send(message, invalid.reason_code, invalid.reason)
                self.stats.dead_lettered += 1
                continue
            except Exception as error:  # one bad record must not stop the stage
                dead_letters.send(message, PROCESSING_ERROR, processing_error_reason(error))
                self.stats.dead_lettered += 1
                continue
            items.append(item)
            sources.setdefault(item[0], []).append(message)
        changes = reduce_batch(items)
        # States folded away by a newer one of the same batch changed nothing either.
        self.stats.stale += sum(state is not None for _, state in items) - sum(
            change.state is not None for change in changes.values()
        )
        failed: dict[str, Exception] = {}
        if changes and not self._retry_redis(lambda: failed.update(self._apply(changes)), stop):
            return  # stopped while Redis was down: the batch is not committed and will be replayed
        for tracking_number, error in failed.items():
            for message in sources[tracking_number]:
                dead_letters.send(message, PROCESSING_ERROR, processing_error_reason(error))
                self.stats.dead_lettered += 1
        applied = {tn: change for tn, change in changes.items() if tn not in failed}
        if (movement_messages or applied) and not self._retry_redis(
            lambda: self._apply_movements(movement_messages, applied), stop
        ):
            return
        dead_letters.flush()
        if offsets:
            try:
                consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False)
            except KafkaException as error:
                # E.g. a rebalance took the partition: its new owner replays from the last commit.
                self.log(f"projector: offsets not committed ({error.args[0].str()}); the batch will be replayed")
        self.stats.batches += 1

    def _decode(self, message: Message) -> tuple[str, ProjectedParcel | None]:
        value = message.value()
        if value is None:
            key = (message.key() or b"").decode(errors="replace")
            return normalize_tracking_number(key), None
        try:
            decoded = self.codec.decode(value, expect="ParcelState")
        except DecodeError as error:
            raise InvalidRecordError(
                "undecodable", f"not a ParcelState ({error.reason_code}): {error.reason}"
            ) from error
        return (state := project(decoded.value, self.postcode_key)).tracking_number, state

    def _apply(self, changes: dict[str, ParcelChange]) -> dict[str, Exception]:
        """Write the batch; returns the parcels whose change raised (left out, to be dead-lettered)."""
        tracking_numbers = sorted(changes)
        hash_keys = [self.keys.parcel(tn) for tn in tracking_numbers]
        with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(*hash_keys)
                    plans: list[WritePlan] = []
                    failed: dict[str, Exception] = {}
                    applied = deleted = stale = 0
                    for tn, hash_key in zip(tracking_numbers, hash_keys, strict=True):
                        values = pipe.hmget(hash_key, StoredIndexEntry.FIELDS)
                        try:
                            planned = _plan(
                                self.keys,
                                tn,
                                changes[tn],
                                StoredIndexEntry.from_values(values),
                                self.move_threshold_ms,
                            )
                        except Exception as error:  # e.g. a stored hash no projector wrote
                            failed[tn] = error
                            continue
                        plans.extend(planned.plans)
                        applied, deleted, stale = (
                            applied + planned.applied,
                            deleted + planned.deleted,
                            stale + planned.stale,
                        )
                    pipe.multi()
                    for plan in plans:
                        queue_plan(pipe, plan)
                    pipe.execute()
                    break
                except redis.WatchError:
                    continue  # another writer touched one of these parcels: read again and re-plan
        self.stats.applied += applied
        self.stats.deleted += deleted
        self.stats.stale += stale
        now_s = time.time()
        for change in changes.values():
            if change.state is not None:
                lag = now_s - change.state.score / 1000
                metrics.EVENT_TIME_LAG.labels(STAGE).observe(max(lag, 0.0))
        self._refresh_status_counts()
        if time.monotonic() >= self._next_backlog:
            self._refresh_backlog()
        return failed

    def _apply_movements(self, messages: list[Message], changes: dict[str, ParcelChange]) -> None:
        """The movement board (``consumers/movements.py``): manifests and unit scans first, then the
        batch's parcels. Every write is idempotent, so a replayed batch changes nothing. Records that
        do not decode are skipped here: the worker dead-letters them."""
        writer = self.movements
        if writer is None:
            return
        with self.redis.pipeline(transaction=False) as pipe:
            for message in messages:
                self.stats.movement_records += 1
                try:
                    decoded = self.codec.decode(message.value() or b"")
                except DecodeError:
                    continue
                if decoded.record_name == "Manifest":
                    writer.manifest(decoded.value, pipe)
                elif decoded.record_name == "ScanEvent" and (unit_scan := unit_scan_of(decoded.value)) is not None:
                    writer.unit_scan(unit_scan, pipe)
            self._log_script_errors(pipe.execute(raise_on_error=False))
        with self.redis.pipeline(transaction=False) as pipe:
            for tracking_number, change in changes.items():
                if change.delete:  # before a new state: a parcel created again starts from version 1
                    writer.remove_parcel(tracking_number, pipe)
                if change.state is not None:
                    writer.parcel(tracking_number, change.state.version, change.state.fields, pipe)
            self._log_script_errors(pipe.execute(raise_on_error=False))

    def _log_script_errors(self, results: list[Any]) -> None:
        """A script that fails on one record (a reply error, not a lost connection) loses that record's
        board update only: retrying the batch would fail the same way and stop the read model."""
        for result in results:
            if isinstance(result, redis.ConnectionError | redis.TimeoutError):
                raise result
            if isinstance(result, redis.RedisError):
                self.log(f"projector: movement board update failed: {result}")

    def _refresh_backlog(self) -> None:
        """Backlog gauges from the stage indexes (``consumers/backlog.py``), at most every
        ``backlog_interval`` seconds: a few commands per stage, whatever the parcels' number."""
        self.backlog_gauges.export(read_backlog(self.redis, self.keys))
        self._next_backlog = time.monotonic() + self.backlog_interval

    def _refresh_status_counts(self) -> None:
        with self.redis.pipeline(transaction=False) as pipe:
            for status in STATUSES:
                pipe.zcard(self.keys.status_index(status))
            counts = pipe.execute()
        for status, count in zip(STATUSES, counts, strict=True):
            metrics.PARCELS.labels(status).set(count)

    def _retry_redis(self, action: Callable[[], None], stop: threading.Event) -> bool:
        """Run ``action`` until Redis takes it (True) or ``stop`` is set (False); no batch is skipped."""
        delay = 0.5
        while True:
            try:
                action()
                return True
            except redis.RedisError as error:
                self.log(f"projector: Redis at {self.settings.redis_url} failed ({error}); retrying in {delay:.1f} s")
                if stop.wait(delay):
                    return False
                delay = min(delay * 2, 10.0)

    def _record_lag(self, consumer: Consumer) -> None:
        try:
            assignment = consumer.assignment()
            positions = consumer.position(assignment) if assignment else []
            for position in positions:
                _low, high = consumer.get_watermark_offsets(position, timeout=1)
                lag = max(high - position.offset, 0) if position.offset >= 0 else high
                metrics.CONSUMER_LAG.labels(self.settings.projector_group_id, position.topic, position.partition).set(
                    lag
                )
        except KafkaException:
            pass  # lag is best effort; the next round tries again


@dataclass
class _Planned:
    plans: list[WritePlan]
    applied: int = 0
    deleted: int = 0
    stale: int = 0


def _plan(
    keys: Keys, tracking_number: str, change: ParcelChange, stored: StoredIndexEntry | None, move_threshold_ms: int
) -> _Planned:
    """One parcel's writes for its change in a batch."""
    planned = _Planned([])
    if change.delete:
        delete = plan_delete(keys, tracking_number, stored)
        if delete is not None:
            planned.plans.append(delete)
            planned.deleted += 1
        stored = None
    if change.state is not None:
        write = plan_write(keys, change.state, stored, move_threshold_ms)
        if write is None:
            planned.stale += 1
        else:
            planned.plans.append(write)
            planned.applied += 1
    return planned


def queue_plan(pipe: redis.client.Pipeline, plan: WritePlan) -> None:
    """Queue one plan's commands on a MULTI/EXEC pipeline."""
    if plan.delete_hash:
        pipe.delete(plan.hash_key)
    if plan.hash_fields:
        pipe.hset(plan.hash_key, mapping=plan.hash_fields)
    for key, member in plan.index_removals:
        pipe.zrem(key, member)
    for key, member, score in plan.index_additions:
        pipe.zadd(key, {member: score})
    if plan.publish is not None:
        pipe.publish(*plan.publish)
