"""The Faust side of the stream processor: topics, tables, the agent and the SLA timer.

- ONE agent reads ``scans``, ``manifests``, ``scans-fanout`` and the worker's internal
  ``<app id>-sla-due`` topic as raw bytes. They are co-partitioned by key (tracking number or unit
  id), so a parcel's scans, its unit's manifests and the unit scans fanned out to it all reach the
  worker that owns the parcel's table partition. ``streams.worker.processor`` does the work.
- Tables ``parcels`` (the stored parcel, ``streams.worker.serde.encode_parcel``), ``units`` (JSON
  of the core's ``Unit.to_dict()``) and ``outbox`` (per source partition, the outputs of its
  last batch), with compacted changelog topics that are never deleted by time
  (``retention.ms=-1``). Per batch the worker writes the tables, waits until the broker
  acknowledged every changelog record (streams/worker/changelog.py: through librdkafka by default,
  as the outputs), then publishes the batch's outputs and waits until the
  broker acknowledged them too (streams/worker/outputs.py: through librdkafka by default), before
  the next batch overwrites the outbox (docs/streams.md, "Delivery semantics"). After an
  assignment the worker publishes the outboxes of its partitions again: what a crash kept from
  being published.
- Timer: a heap of the next due time of every owned parcel and unit (an SLA deadline, expiry,
  archiving, the end of a unit or of an archived or erased parcel's marker), mirrored in the
  small ``timers`` table (written when a time moves, read back after an assignment: no parcel is
  decoded). Every ``sla_timer_interval`` the timer takes the keys whose time has passed on the
  event-time clock and sends them to ``<app id>-sla-due``; the agent decides there
  (``streams.core.apply.apply_due``). Going through the agent keeps one writer per table
  partition (Faust tables can only be written while processing a message) and puts the resulting
  state change in the changelog like any other.
- ``parcel-commands``: erasure requests (``parcelstream parcels erase``), co-partitioned too.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable
from typing import Any

import faust
from aiokafka.partitioner import murmur2
from faust.serializers.codecs import get_codec
from faust.streams import _current_event  # the current-event context Faust tables read
from faust.types import TP, EventT, FutureMessage, Message

from schemas.topics import DAY_MS, TopicNames, TopicSpec
from streams.settings import WorkerSettings
from streams.worker import metrics
from streams.worker.changelog import LibrdkafkaChangelog
from streams.worker.deadlines import DeadlineHeap
from streams.worker.estimates import PartitionEstimates
from streams.worker.outputs import LibrdkafkaPublisher, create_publisher
from streams.worker.processor import (
    ERASED_PREFIX,
    UNIT_TIMER_PREFIX,
    Batch,
    Headers,
    Output,
    Processor,
    SourceMessage,
    WarmCache,
    read_outbox,
    timer_partition,
)
from streams.worker.serde import decode_parcel

log = logging.getLogger(__name__)

#: Table changelogs: latest value per key, kept forever (Tansu has no broker default to rely on).
CHANGELOG_CONFIG = {"cleanup.policy": "compact", "retention.ms": "-1"}
LAG_REFRESH_SECONDS = 2.0


class RawSchema(faust.Schema):  # type: ignore[misc]  # faust's classes are untyped
    """The schema of the agent's inputs: an event holds the message's key and value bytes as they
    are. The agent reads ``event.message`` (the core decodes and judges the bytes), so Faust's
    per-message key and value decoding through its serializer registry was work for nothing."""

    def __init__(self) -> None:
        super().__init__(key_type=bytes, value_type=bytes)

    def compile(self, app: faust.App, **_: Any) -> Callable[..., Any]:
        create_event = app.create_event

        async def decode(message: Message, *, propagate: bool = False) -> EventT:
            return create_event(message.key, message.value, message.headers, message)  # type: ignore[no-any-return]

        return decode


class AckedTable(faust.Table):  # type: ignore[misc]  # faust's classes are untyped
    """A table whose changelog records can be awaited: ``changelog_acked`` returns once the broker
    acknowledged every record written since its last call (Faust only buffers them).

    With ``changelog`` set (``StreamWorker`` sets it when outputs go through librdkafka), a write's
    changelog record goes through that librdkafka producer instead of Faust's (streams/worker/changelog.py):
    same topic, partition, key and value bytes; the batch awaits ``changelog.acked()``, which also
    moves the store's persisted offsets as Faust's ``_on_changelog_sent`` does."""

    def __init__(self, *args: Any, changelog: LibrdkafkaChangelog | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unacked: list[FutureMessage] = []
        self.changelog = changelog
        self._changelog_name: str | None = None
        # The changelog key's bytes as Faust makes them (the table's key serializer, JSON by default).
        self._dump_key: Callable[[str], bytes] = get_codec(self.key_serializer).dumps

    def send_changelog(self, *args: Any, **kwargs: Any) -> FutureMessage:
        sent: FutureMessage = super().send_changelog(*args, **kwargs)
        self._unacked.append(sent)
        return sent

    def on_key_set(self, key: str, value: bytes) -> None:
        if self.changelog is None:
            super().on_key_set(key, value)
            return
        partition = self._produce_changelog(key, value)
        self._maybe_set_key_ttl(key, partition)
        self._sensor_on_set(self, key, value)

    def on_key_del(self, key: str) -> None:
        if self.changelog is None:
            super().on_key_del(key)
            return
        partition = self._produce_changelog(key, None)  # a tombstone
        self._maybe_del_key_ttl(key, partition)
        self._sensor_on_del(self, key)

    def _produce_changelog(self, key: str, value: bytes | None) -> int:
        """The record Faust's ``send_changelog`` would send, produced through ``changelog``: the key
        by the table's key serializer (JSON: ``"LP…"``), the value bytes as they are (Faust does
        not serialize bytes); returns its partition."""
        assert self.changelog is not None
        topic = self._changelog_name
        if topic is None:
            topic = self._changelog_name = self.changelog_topic_name
            self.changelog.register(topic, self._on_changelog_acknowledged)
        partition: int = self.partition_for_key(key)  # the current event's (Faust's default)
        self.changelog.produce(topic, partition, self._dump_key(key), value)
        return partition

    def _on_changelog_acknowledged(self, tp: TP, offset: int) -> None:
        # What Faust's _on_changelog_sent does with the last acknowledged record of a partition.
        if self.app.in_transaction:
            self.app.tables.persist_offset_on_commit(self.data, tp, offset)
        else:
            self.data.set_persisted_offset(tp, offset)

    async def changelog_acked(self) -> None:
        """Raises the send error of a record the broker refused (the batch then fails)."""
        unacked, self._unacked = self._unacked, []
        if unacked:
            await asyncio.gather(*unacked)


def store_options(settings: WorkerSettings) -> dict[str, Any] | None:
    """Options of a table's store: RocksDB's memory bounded (Faust's defaults allow GiBs per partition)."""
    if settings.store != "rocksdb":
        return None
    mib = 1024 * 1024
    return {
        "write_buffer_size": settings.rocksdb_write_buffer_mb * mib,
        "max_write_buffer_number": 2,
        "block_cache_size": settings.rocksdb_block_cache_mb * mib,
    }


def acked_table(
    app: faust.App, settings: WorkerSettings, name: str, help: str, changelog: LibrdkafkaChangelog | None = None
) -> AckedTable:
    table = AckedTable(
        app,
        name=name,
        key_type=str,
        value_type=bytes,
        extra_topic_configs=CHANGELOG_CONFIG,
        beacon=app.tables.beacon,
        help=help,
        options=store_options(settings),
        changelog=changelog,
    )
    return app.tables.add(table)  # type: ignore[no-any-return]


def sla_due_spec(settings: WorkerSettings) -> TopicSpec:
    """The worker's internal topic of parcels whose SLA deadline has come (key: tracking number)."""
    return TopicSpec(
        f"{settings.app_id}-sla-due",
        "tracking number",
        "(bytes: the event-time clock when due)",
        "delete",
        DAY_MS,
        "Internal to streams: SLA deadlines reached without a scan",
    )


def sla_due_topic_name(settings: WorkerSettings) -> str:
    # The spec's suffix already is the full name: the topic belongs to the app id, not the prefix.
    return sla_due_spec(settings).suffix


def record_headers(headers: object) -> Headers:
    """A consumed record's headers as (name, value) pairs (Faust passes aiokafka's sequence or a mapping)."""
    if not headers:
        return ()
    pairs = headers.items() if isinstance(headers, dict) else headers
    return tuple((str(name), bytes(value or b"")) for name, value in pairs)  # type: ignore[union-attr]


def changelog_buffer_size(settings: WorkerSettings) -> int:
    """Changelog records Faust's producer buffer holds before the consumer waits: two batches' writes."""
    return 2 * settings.batch_size


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def key_partition(key: str, partitions: int) -> int:
    """Partition of a key under the murmur2 partitioner every producer of the pipeline uses."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


class StreamWorker:
    """Registers the agent, tables and timer of the stream processor on ``app``."""

    def __init__(self, app: faust.App, settings: WorkerSettings) -> None:
        self.app = app
        self.settings = settings
        self.topics: TopicNames = settings.topics
        self.estimates = PartitionEstimates(settings.estimate_config())
        self.processor = Processor.from_settings(settings, estimates=self.estimates)
        self.clock = self.processor.clock
        self.deadlines = DeadlineHeap()
        self.warm = WarmCache(settings.state_cache_size)
        self.sla_due_name = sla_due_topic_name(settings)
        self._last_lag_refresh = 0.0
        self._lag_labels: set[tuple[str, str, str]] = set()

        self.source = app.topic(
            self.topics.scans,
            self.topics.manifests,
            self.topics.scans_fanout,
            self.topics.parcel_commands,
            self.sla_due_name,
            schema=RawSchema(),
        )
        self.outputs = {
            name: app.topic(name, key_type=bytes, value_type=bytes)
            for name in (
                self.topics.parcel_state,
                self.topics.status_updates,
                self.topics.sla_events,
                self.topics.scans_fanout,
                self.topics.dead_letters,
            )
        }
        self.sla_due = app.topic(self.sla_due_name, key_type=bytes, value_type=bytes)
        self.publisher = create_publisher(settings.output_producer, settings.bootstrap_servers, app)
        app.on_before_shutdown.connect(self._stop_publisher)
        # Changelog records through the outputs' librdkafka producer (streams/worker/changelog.py).
        self.changelog = (
            LibrdkafkaChangelog(self.publisher.producer) if isinstance(self.publisher, LibrdkafkaPublisher) else None
        )
        self.parcels = acked_table(app, settings, "parcels", "Parcel states", self.changelog)
        self.units = acked_table(app, settings, "units", "Handling units", self.changelog)
        self.estimates_table = acked_table(
            app,
            settings,
            "estimates",
            "Learned delivery-time sketches per partition, route, step and service level",
            self.changelog,
        )
        self.outbox = acked_table(
            app, settings, "outbox", "Outputs of the last batch, per source partition", self.changelog
        )
        self.timers = acked_table(app, settings, "timers", "Next due time of every parcel and unit", self.changelog)
        self.tables = (self.parcels, self.units, self.estimates_table, self.outbox, self.timers)
        self.timers.on_recover(self._rebuild_deadlines)
        self.outbox.on_recover(self._republish_outboxes)
        self.estimates_table.on_recover(self._restore_estimates)
        # Another worker may change a partition's keys while this one does not own it.
        app.on_partitions_revoked.connect(self._forget_warm_state)
        app.on_partitions_assigned.connect(self._forget_warm_state)
        app.agent(self.source, name="parcelstream.streams.process")(self.process)
        app.timer(settings.sla_timer_interval, name="parcelstream.streams.sla_timer")(self.sla_timer)

    async def process(self, stream: faust.StreamT[bytes]) -> None:
        """Process the inputs in batches: one table write per changed key, then (once the broker
        acknowledged those changelog records) the batch's outputs; Faust acks (and later commits)
        the batch's offsets after this body ran."""
        settings = self.settings
        events: list[EventT]
        # With changelogs on Faust's producer (PARCELSTREAM_OUTPUT_PRODUCER=faust; by default they go
        # through librdkafka): Faust buffers table changelog sends and makes the consumer wait, message
        # by message, while more than ``max_messages`` (100) are pending: a batch writes up to one key
        # per message, so the consumer stalled (and warned "producer buffer full") behind every batch.
        # The batch awaits its changelog records anyway (``changelog_acked``), which bounds the buffer.
        buffer = self.app.producer.buffer
        buffer.max_messages = max(buffer.max_messages, changelog_buffer_size(settings))
        async for events in stream.take_events(settings.batch_size, within=settings.batch_timeout):
            batch = self.processor.batch(self.parcels, self.units, self.warm)
            event_of_partition: dict[int, EventT] = {}
            now = wall_ms()
            # Table reads outside any event: Faust's stores then look a key up in every partition they
            # hold (the current event would pin them to that event's partition).
            token = _current_event.set(None)
            try:
                for event in events:
                    message = event.message
                    event_of_partition[message.partition] = event
                    source = SourceMessage(
                        message.topic,
                        message.partition,
                        message.offset,
                        message.key,
                        message.value,
                        record_headers(message.headers),
                    )
                    if message.topic == self.sla_due_name:
                        key = message.key.decode() if message.key else ""
                        tick = message.value.decode() if message.value else None
                        batch.add_sla_due(key, now, message.partition, tick, source)
                    else:
                        batch.add(source, now)
                outputs = batch.outputs()
                # Persist before publishing: a crash before the acks publishes nothing of the batch (its
                # replay starts from the stored state); a crash after them replays inputs that are now
                # duplicates, and the core re-sends the outputs it recorded for them.
                self._write_state(batch, event_of_partition)
                self._write_estimates(event_of_partition)
                await self._changelog_acked()
                # Delivered, not only enqueued, before Faust may commit the batch's offsets and before the
                # next batch overwrites the outbox: an output the broker refused fails the batch.
                await self.publisher.publish(outputs)
            except BaseException:
                self.warm.clear()  # its objects may hold changes that never reached the tables
                raise
            finally:
                _current_event.reset(token)
            batch.state.keep_warm()
            batch.count_metrics()
            for tracking_number, deadline in batch.deadlines():
                self.deadlines.schedule(tracking_number, deadline)

    async def _changelog_acked(self) -> None:
        """Every changelog record written so far acknowledged by the broker (raises if one was refused)."""
        if self.changelog is not None:
            await self.changelog.acked()
        for table in self.tables:
            await table.changelog_acked()  # records sent through Faust's producer, if any

    async def _stop_publisher(self, sender: object, **kwargs: object) -> None:
        await self.publisher.stop()

    async def _forget_warm_state(self, sender: object, partitions: object, **kwargs: object) -> None:
        self.warm.clear()

    def _write_state(self, batch: Batch, event_of_partition: dict[int, EventT]) -> None:
        """One table write per changed key, as the event of its partition: Faust's changelog and
        RocksDB store put a key in the partition of the event that writes it."""
        tables = {"parcels": self.parcels, "units": self.units}
        partitions = batch.state.partitions
        for table, key, value in batch.state.changes():
            event = event_of_partition[partitions[table, key]]  # type: ignore[index]
            _current_event.set(weakref.ref(event))
            if value is not None:
                tables[table][key] = value
            elif key in tables[table]:
                del tables[table][key]  # Faust's on_key_del: a changelog tombstone
        for partition, key, value in batch.outbox_records():
            _current_event.set(weakref.ref(event_of_partition[partition]))  # type: ignore[index]
            self.outbox[key] = value
        # The timer index: only the keys whose due time moved (``_rebuild_deadlines`` reads it back).
        partitions_total = self.settings.partitions
        for timer_key, due in batch.deadlines():
            if self.deadlines.due_of(timer_key) == due:
                continue
            event = event_of_partition.get(timer_partition(timer_key, partitions_total))
            if event is None:
                continue
            _current_event.set(weakref.ref(event))
            if due is not None:
                self.timers[timer_key] = str(due).encode()
            elif timer_key in self.timers:
                del self.timers[timer_key]

    def _write_estimates(self, event_of_partition: dict[int, EventT]) -> None:
        """The learners' changed rows, each as an event of its partition (a learner only learns
        from its partition's deliveries, so the batch has one)."""
        table = self.estimates_table
        for partition, key, value in self.estimates.changes():
            event = event_of_partition.get(partition)
            if event is None:
                continue
            _current_event.set(weakref.ref(event))
            if value is None:
                if key in table:
                    del table[key]
            else:
                table[key] = value

    async def _restore_estimates(self) -> None:
        """After a rebalance or a restart: the learners of the partitions this worker now owns."""
        owned = self._owned_partitions()
        loaded = self.estimates.restore(list(self.estimates_table.items()), owned)
        log.info("estimates: %d learned rows restored for partitions %s", loaded, sorted(owned))

    async def sla_timer(self) -> None:
        """Send the parcels whose SLA deadline has passed to the agent (through ``sla-due``)."""
        now = self.clock.now_ms(wall_ms())
        due = self.deadlines.pop_due(now)
        try:
            sent = [await self._send_due(timer_key, now) for timer_key in due]
            await asyncio.gather(*sent)  # delivered, not only enqueued
        except Exception:
            # Popped but maybe not sent: due again at the next sweep (a repeated tick is idempotent).
            for timer_key in due:
                if timer_key not in self.deadlines:
                    self.deadlines.schedule(timer_key, now)
            log.exception("timer: sending %d due keys failed; retried at the next sweep", len(due))
        await self._refresh_consumer_lag()

    async def _send_due(self, timer_key: str, now: int) -> Any:
        """Send a due key to ``sla-due``; returns the future of its delivery."""
        if timer_key.startswith(UNIT_TIMER_PREFIX):
            unit = timer_key.removeprefix(UNIT_TIMER_PREFIX)
            return await self.sla_due.send(key=unit.encode(), value=f"{UNIT_TIMER_PREFIX}{now}".encode())
        if timer_key.startswith(ERASED_PREFIX):  # erased:<partition>:<hash>, to the marker's partition
            _, partition, digest = timer_key.split(":", 2)
            key = f"{ERASED_PREFIX}{digest}".encode()
            return await self.sla_due.send(key=key, value=str(now).encode(), partition=int(partition))
        return await self.sla_due.send(key=timer_key.encode(), value=str(now).encode())

    async def _rebuild_deadlines(self) -> None:
        """After a rebalance: schedule what is due in the partitions this worker now owns, from the
        timer index (a few bytes per key: no parcel is decoded)."""
        owned = self._owned_partitions()
        partitions = self.settings.partitions
        started = time.monotonic()
        token = _current_event.set(None)
        try:
            self.deadlines.rebuild(
                (timer_key, int(value))
                for timer_key, value in list(self.timers.items())
                if timer_partition(timer_key, partitions) in owned
            )
        finally:
            _current_event.reset(token)
        log.info(
            "timer: %d parcels and units with something due in partitions %s (read in %.2f s)",
            len(self.deadlines),
            sorted(owned),
            time.monotonic() - started,
        )

    async def _republish_outboxes(self) -> None:
        """After an assignment: publish again the outputs of the last batch of every owned partition
        (stored with the state, perhaps never published before a crash). Consumers de-duplicate
        them by id; a ParcelState is published as the parcel is now."""
        topic = self.topics.parcel_state
        encode = self.processor.parcel_state_encoder.encode
        entries = self.processor.entries
        token = _current_event.set(None)
        try:
            again: list[Output] = []
            for partition in sorted(self._owned_partitions()):
                for output_topic, key, kept in read_outbox(self.outbox, str(partition)):
                    value = kept
                    if output_topic == topic:  # the parcel's state as it is now
                        data = self.parcels.get(key.decode()) if key and value is not None else None
                        if value is not None:  # a state (a tombstone stays one)
                            if data is None:
                                continue  # not stored here any more: its own tombstone was kept
                            parcel = decode_parcel(data, entries)
                            value = None if parcel.archived_at_ms is not None else encode(parcel)
                    again.append(Output(output_topic, key, value))
            if again:
                await self.publisher.publish(again)  # delivered before the agent processes anything new
                log.info("outbox: published %d outputs of the last batches again", len(again))
        finally:
            _current_event.reset(token)

    def _owned_partitions(self) -> set[int]:
        return {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == self.topics.scans}

    async def _refresh_consumer_lag(self) -> None:
        started = time.monotonic()
        if started - self._last_lag_refresh < LAG_REFRESH_SECONDS:
            return
        self._last_lag_refresh = started
        consumer = self.app.consumer
        labels: set[tuple[str, str, str]] = set()
        # Input topics only: the changelogs and Faust's assignor topic are assigned too, but read only
        # during recovery, so their "lag" would never drain and would page someone for nothing.
        inputs = {self.topics.scans, self.topics.manifests, self.topics.scans_fanout}
        for tp in self.app.assignor.assigned_actives():
            if tp.topic not in inputs:
                continue
            try:
                highwater = consumer.highwater(tp)
                position = await consumer.position(tp)
            except Exception:  # lag is best effort: the partition may be moving in a rebalance
                continue
            if highwater is not None and position is not None:
                label = (self.settings.app_id, tp.topic, str(tp.partition))
                metrics.CONSUMER_LAG.labels(*label).set(max(0, highwater - position))
                labels.add(label)
        for gone in self._lag_labels - labels:  # partitions another worker owns now
            metrics.CONSUMER_LAG.remove(*gone)
        self._lag_labels = labels
