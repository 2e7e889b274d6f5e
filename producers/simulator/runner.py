"""Publishes simulated traffic in compressed real time.

The simulated clock starts at the simulation's ``start_ms`` when the run starts and runs ``speed``
times faster than the wall clock: a record is published when the wall clock reaches
``wall_start + (publish_at_ms - start_ms) / speed``. ``speed=0`` publishes as fast as possible.
In continuous mode new parcels are generated one simulated hour at a time (``rate`` parcels per
simulated hour), just before the simulated clock reaches that hour, until ``duration`` wall
seconds have passed. Scans and manifests count in producers/metrics.py once the broker
acknowledges them.
"""

from __future__ import annotations

import heapq
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from confluent_kafka import KafkaError, Message
from prometheus_client import start_http_server

from producers.metrics import CARRIER_LAST_SCAN, MANIFESTS_PUBLISHED, PUBLISH_FAILURES, SCANS_PUBLISHED
from producers.publisher import DeliveryFailure, Publisher
from producers.simulator.hostile import with_hostile
from producers.simulator.model import HOUR, Simulation, SimulationConfig, TimedRecord, simulate
from schemas.topics import TopicNames

#: Seconds between two progress callbacks.
PROGRESS_INTERVAL = 0.5
#: Longest single wait for a record's publish time, so a stop request is served quickly.
MAX_WAIT = 0.1


@dataclass
class RunSummary:
    """What a run sent and what the broker acknowledged, per scan source ("manifest" for manifests)."""

    sent: Counter[str] = field(default_factory=Counter)
    acknowledged: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    failures: list[DeliveryFailure] = field(default_factory=list)
    hostile: Counter[str] = field(default_factory=Counter)
    """Hostile records sent, per kind (``--hostile``); they count under their source in ``sent`` too."""
    parcels: int = 0
    scheduled: int | None = None
    """Records to publish in all, when known (one simulation); None in continuous mode."""
    not_yet_due: int = 0
    """Records generated but not due when the run ended (duration reached or stopped)."""
    simulated_ms: int = 0
    """The simulated clock when the run ended (UTC epoch ms)."""
    elapsed_s: float = 0.0
    interrupted: bool = False

    @property
    def total_sent(self) -> int:
        return sum(self.sent.values())

    @property
    def ok(self) -> bool:
        return not self.failures


class _Schedule:
    """Records in publish order; in continuous mode it generates the next simulated hour on demand."""

    def __init__(
        self, first: Simulation | None, config: SimulationConfig | None, rate: float, hostile_rate: float = 0.0
    ) -> None:
        self._heap: list[tuple[int, int, TimedRecord]] = []
        self._hostile_rate = hostile_rate
        self._sequence = 0
        self._config = config
        self._rate = rate
        self._next_batch = 0
        self.parcels = 0
        self.start_ms = first.start_ms if first else (config.start_ms if config else 0) or 0
        if first is not None:
            self._push(first)

    def _push(self, simulation: Simulation) -> None:
        self.parcels += len(simulation.truth)
        if self._hostile_rate > 0:
            simulation, _ = with_hostile(simulation, self._hostile_rate, seed=self._next_batch)
        for record in simulation.records:
            heapq.heappush(self._heap, (record.publish_at_ms, self._sequence, record))
            self._sequence += 1

    def _batch_start_ms(self, batch: int) -> int:
        return self.start_ms + batch * HOUR

    def _generate_due_batches(self) -> None:
        if self._config is None or self._rate <= 0:
            return
        # Every record of batch k is sent after the batch's start: generate it before anything later.
        while not self._heap or self._heap[0][0] >= self._batch_start_ms(self._next_batch):
            batch = self._next_batch
            parcels = math.floor(self._rate * (batch + 1)) - math.floor(self._rate * batch)
            self._next_batch += 1
            config = replace(
                self._config,
                parcels=parcels,
                batch=batch % 1000,
                seed=self._config.seed + batch // 1000,
                start_ms=self._batch_start_ms(batch),
                order_window_ms=HOUR,
            )
            self._push(simulate(config))

    def peek(self) -> TimedRecord | None:
        self._generate_due_batches()
        return self._heap[0][2] if self._heap else None

    def pop(self) -> TimedRecord:
        return heapq.heappop(self._heap)[2]

    def __len__(self) -> int:
        return len(self._heap)


class _MeteredPublisher(Publisher):
    """The Publisher, plus a call per delivery report so metrics count acknowledged records only."""

    def __init__(self, *args: Any, on_report: Callable[[str, KafkaError | None], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_report = on_report

    def _on_delivery(self, reference: str, *args: Any, **kwargs: Any) -> Any:
        # Wraps the Publisher's own delivery callback (whatever else it takes), then counts.
        report = super()._on_delivery(reference, *args, **kwargs)

        def callback(error: KafkaError | None, message: Message) -> None:
            report(error, message)
            self._on_report(reference, error)

        return callback


def _count_delivery(summary: RunSummary, source: str, record: TimedRecord, error: KafkaError | None) -> None:
    """Count one delivery report in the summary and the producer metrics."""
    if error is not None:
        summary.failed[source] += 1
        PUBLISH_FAILURES.labels(reason_code=error.name().lower().lstrip("_")).inc()
        return
    summary.acknowledged[source] += 1
    if record.kind == "scan":
        SCANS_PUBLISHED.labels(source=source, code=record.value["code"]).inc()
        CARRIER_LAST_SCAN.labels(carrier=record.value["carrier"], source=source).set(time.time())
    else:
        MANIFESTS_PUBLISHED.labels(unit_type=record.value["unit_type"]).inc()


class SimulationRunner:
    """Publishes simulations to ``topics`` on ``bootstrap_servers`` at ``speed`` (0: as fast as possible)."""

    def __init__(
        self,
        bootstrap_servers: str,
        topics: TopicNames,
        *,
        speed: float = 8640.0,
        metrics_port: int | None = None,
        stop: threading.Event | None = None,
        on_progress: Callable[[RunSummary], None] | None = None,
        hostile_rate: float = 0.0,
        **producer_overrides: Any,
    ) -> None:
        if speed < 0:
            raise ValueError(f"speed must be 0 (as fast as possible) or positive, got {speed}")
        self.bootstrap_servers = bootstrap_servers
        self.topics = topics
        self.speed = speed
        self.metrics_port = metrics_port
        self.stop = stop or threading.Event()
        self.on_progress = on_progress
        if not 0.0 <= hostile_rate <= 1.0:
            raise ValueError(f"hostile rate must be between 0 and 1, got {hostile_rate}")
        self.hostile_rate = hostile_rate
        """Hostile records per honest record mixed in (producers/simulator/hostile.py); 0: none."""
        self.producer_overrides = producer_overrides

    def run(self, simulation: Simulation, duration: float | None = None) -> RunSummary:
        """Publish every record of ``simulation`` (or until ``duration`` wall seconds or a stop)."""
        simulation, _ = with_hostile(simulation, self.hostile_rate)
        summary = RunSummary(scheduled=len(simulation.records))
        return self._run(_Schedule(simulation, None, 0.0), summary, duration)

    def run_continuous(self, config: SimulationConfig, rate: float, duration: float | None) -> RunSummary:
        """Generate ``rate`` parcels per simulated hour and publish them until ``duration`` or a stop."""
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        if self.speed <= 0:
            raise ValueError("continuous generation needs a speed above 0 (simulated seconds per wall second)")
        if config.start_ms is None:
            config = replace(config, start_ms=time.time_ns() // 1_000_000)
        return self._run(_Schedule(None, config, rate, self.hostile_rate), RunSummary(), duration)

    def _run(self, schedule: _Schedule, summary: RunSummary, duration: float | None) -> RunSummary:
        in_flight: dict[str, tuple[str, TimedRecord]] = {}

        def on_report(reference: str, error: KafkaError | None) -> None:
            source, record = in_flight.pop(reference)
            _count_delivery(summary, source, record, error)

        server = start_http_server(self.metrics_port) if self.metrics_port else None
        publisher = _MeteredPublisher(
            self.bootstrap_servers, self.topics, on_report=on_report, stage="simulator", **self.producer_overrides
        )
        wall_start = time.monotonic()
        deadline = wall_start + duration if duration else None
        next_progress = wall_start
        sequence = 0
        try:
            for record in self._due_records(schedule, wall_start, deadline, publisher):
                now = time.monotonic()
                if self.on_progress and now >= next_progress:
                    summary.elapsed_s = now - wall_start
                    self.on_progress(summary)
                    next_progress = now + PROGRESS_INTERVAL
                if record is None:
                    continue
                source = record.value["source"] if record.kind == "scan" else "manifest"
                reference = str(sequence)
                sequence += 1
                in_flight[reference] = (source, record)
                if record.kind == "scan":
                    publisher.publish_scan(record.value, reference)
                else:
                    publisher.publish_manifest(record.value, reference)
                summary.sent[source] += 1
                if record.hostile:
                    summary.hostile[record.hostile] += 1
                summary.simulated_ms = record.publish_at_ms
        finally:
            report = publisher.flush()
            # Records the flush could not account for are failures too (reported without a source).
            summary.failures = list(report.failures)
            for reference, (source, _record) in list(in_flight.items()):
                summary.failed[source] += 1
                del in_flight[reference]
            summary.parcels = schedule.parcels
            summary.not_yet_due = len(schedule)
            summary.interrupted = self.stop.is_set()
            summary.elapsed_s = time.monotonic() - wall_start
            if server is not None:
                server[0].shutdown()
                server[0].server_close()
        if self.on_progress:
            self.on_progress(summary)
        return summary

    def _due_records(
        self, schedule: _Schedule, wall_start: float, deadline: float | None, publisher: Publisher
    ) -> Iterator[TimedRecord | None]:
        """Yield each record when its publish time comes, and None after each wait, during which
        delivery reports are served."""
        while not self.stop.is_set():
            record = schedule.peek()
            now = time.monotonic()
            if record is None or (deadline is not None and now >= deadline):
                return
            if self.speed > 0:
                due = wall_start + (record.publish_at_ms - schedule.start_ms) / 1000 / self.speed
                if due > now:
                    wake = min(due, deadline) if deadline is not None else due
                    publisher.poll(min(wake - now, MAX_WAIT))
                    yield None
                    continue
            yield schedule.pop()
