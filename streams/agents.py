"""The Faust side of the stream processor: topics, tables, the agent and the SLA timer.

- ONE agent reads ``scans``, ``manifests``, ``scans-fanout`` and the worker's internal
  ``<app id>-sla-due`` topic as raw bytes. They are co-partitioned by key (tracking number or unit
  id), so a parcel's scans, its unit's manifests and the unit scans fanned out to it all reach the
  worker that owns the parcel's table partition. ``streams.processor`` does the work.
- Tables ``parcels`` and ``units`` keep JSON bytes of the core's ``to_dict()``, with compacted
  changelog topics that are never deleted by time (``retention.ms=-1``).
- SLA timer: a heap of the next deadline of every owned parcel. Every ``sla_timer_interval`` the
  timer takes the parcels whose deadline has passed on the event-time clock and sends their
  tracking numbers to ``<app id>-sla-due``; the agent evaluates them there. Going through the
  agent keeps one writer per table partition (Faust tables can only be written while processing a
  message) and puts the resulting state change in the changelog like any other.
"""

from __future__ import annotations

import logging
import time

import faust
from aiokafka.partitioner import murmur2
from faust.types import EventT

from schemas.topics import DAY_MS, TopicNames, TopicSpec
from streams import metrics
from streams.clock import EventClock
from streams.deadlines import DeadlineHeap
from streams.processor import Processor, SourceMessage
from streams.settings import WorkerSettings
from streams.sla import SlaRules

log = logging.getLogger(__name__)

#: Table changelogs: latest value per key, kept forever (Tansu has no broker default to rely on).
CHANGELOG_CONFIG = {"cleanup.policy": "compact", "retention.ms": "-1"}
LAG_REFRESH_SECONDS = 2.0


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
        self.rules = SlaRules.from_settings(settings)
        self.clock = EventClock(settings.clock_speed)
        self.processor = Processor(self.topics, self.rules, self.clock)
        self.deadlines = DeadlineHeap()
        self.sla_due_name = sla_due_topic_name(settings)
        self._last_lag_refresh = 0.0
        self._lag_labels: set[tuple[str, str, str]] = set()

        self.source = app.topic(
            self.topics.scans,
            self.topics.manifests,
            self.topics.scans_fanout,
            self.sla_due_name,
            key_type=bytes,
            value_type=bytes,
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
        self.parcels = app.Table(
            "parcels", key_type=str, value_type=bytes, extra_topic_configs=CHANGELOG_CONFIG, help="Parcel states"
        )
        self.units = app.Table(
            "units", key_type=str, value_type=bytes, extra_topic_configs=CHANGELOG_CONFIG, help="Handling units"
        )
        self.parcels.on_recover(self._rebuild_deadlines)
        app.agent(self.source, name="parcelstream.streams.process")(self.process)
        app.timer(settings.sla_timer_interval, name="parcelstream.streams.sla_timer")(self.sla_timer)

    async def process(self, stream: faust.StreamT[bytes]) -> None:
        event: EventT
        async for event in stream.events():
            message = event.message
            now = wall_ms()
            if message.topic == self.sla_due_name:
                key = message.key.decode() if message.key else ""
                result = self.processor.handle_sla_due(key, self.parcels, now)
            else:
                source = SourceMessage(message.topic, message.partition, message.offset, message.key, message.value)
                result = self.processor.handle(source, self.parcels, self.units, now)
            for output in result.outputs:
                await self.outputs[output.topic].send(key=output.key, value=output.value)
            result.write_state(self.parcels, self.units)
            if result.deadline is not None:
                self.deadlines.schedule(*result.deadline)

    async def sla_timer(self) -> None:
        """Send the parcels whose SLA deadline has passed to the agent (through ``sla-due``)."""
        now = self.clock.now_ms(wall_ms())
        for tracking_number in self.deadlines.pop_due(now):
            await self.sla_due.send(key=tracking_number.encode(), value=str(now).encode())
        await self._refresh_consumer_lag()

    async def _rebuild_deadlines(self) -> None:
        """After a rebalance: schedule the deadlines of the parcels this worker now owns."""
        owned = self._owned_partitions()
        partitions = self.settings.partitions
        self.deadlines.rebuild(
            (tracking_number, self.processor.deadline_of(data))
            for tracking_number, data in list(self.parcels.items())
            if key_partition(tracking_number, partitions) in owned
        )
        log.info("SLA timer: %d parcels with a pending deadline in partitions %s", len(self.deadlines), sorted(owned))

    def _owned_partitions(self) -> set[int]:
        return {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == self.topics.scans}

    async def _refresh_consumer_lag(self) -> None:
        started = time.monotonic()
        if started - self._last_lag_refresh < LAG_REFRESH_SECONDS:
            return
        self._last_lag_refresh = started
        consumer = self.app.consumer
        labels: set[tuple[str, str, str]] = set()
        for tp in self.app.assignor.assigned_actives():
            if tp.topic == self.sla_due_name:
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
