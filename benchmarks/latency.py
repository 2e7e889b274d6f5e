"""Latency at a fixed offered load: publish the dataset's records at ``rate`` records/s with their
event time set to the wall clock, and measure, for every ParcelState the worker publishes, the
wall time at arrival minus its ``last_event_time_ms`` (event time → parcel state produced).

The percentiles are given over every state and apart for the states whose latest entry came by
fan-out (a unit scan: a container, ULD or bag, copied to its members through ``scans-fanout``, one
hop per level) and for the others (the parcel's own scan): one ULD scan can make 150 states, 1 %
of a 15 s window at 800 records/s, so the fan-out tail alone can set the overall p99."""

from __future__ import annotations

import io
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import fastavro
from confluent_kafka import OFFSET_END, Consumer, Producer, TopicPartition

from producers.publisher import scan_key
from schemas.codec import default_codec
from schemas.kafka_clients import producer_config
from schemas.topics import TopicNames

DRAIN_IDLE_SECONDS = 3.0
#: Most ParcelStates one read takes from the consumer.
READ_BATCH = 5000
#: Most seconds the load run waits for its last records to be delivered.
FLUSH_SECONDS = 30.0


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class FastEncoder:
    """The codec's wire format with schemas parsed once (the load generator must not be the bottleneck)."""

    def __init__(self) -> None:
        codec = default_codec()
        self._schemas = {}
        for name in ("ScanEvent", "Manifest"):
            schema = codec.latest(name)
            self._schemas[name] = (struct.pack(">bI", 0, schema.schema_id), fastavro.parse_schema(schema.parsed))

    def encode(self, record_name: str, value: dict[str, Any]) -> bytes:
        header, schema = self._schemas[record_name]
        buffer = io.BytesIO()
        buffer.write(header)
        fastavro.schemaless_writer(buffer, schema, value)
        return buffer.getvalue()


def restamped(kind: str, value: dict[str, Any], now: int) -> dict[str, Any]:
    """The record as if it happened now (order data included, so SLA promises stay realistic)."""
    value = {**value, "event_time_ms": now, "recorded_time_ms": now}
    if kind == "scan" and value.get("shipment"):
        value["shipment"] = {**value["shipment"], "ordered_time_ms": now}
    return value


@dataclass
class LatencyResult:
    offered_per_s: float
    published: int
    states: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    #: States whose latest entry is a unit scan's (came by fan-out), and the p99 of those and of the others.
    fanout_states: int = 0
    fanout_p99_ms: float = float("nan")
    direct_p99_ms: float = float("nan")


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def latency_result(rate: float, published: int, latencies: list[tuple[float, bool]]) -> LatencyResult:
    """Percentiles of (latency ms, came by fan-out) pairs: over all, and p99 of each kind."""
    every = sorted(latency for latency, _ in latencies)
    fanout = sorted(latency for latency, by_fanout in latencies if by_fanout)
    direct = sorted(latency for latency, by_fanout in latencies if not by_fanout)
    return LatencyResult(
        offered_per_s=rate,
        published=published,
        states=len(every),
        p50_ms=percentile(every, 0.50),
        p95_ms=percentile(every, 0.95),
        p99_ms=percentile(every, 0.99),
        fanout_states=len(fanout),
        fanout_p99_ms=percentile(fanout, 0.99),
        direct_p99_ms=percentile(direct, 0.99),
    )


class LoadRun:
    """Publishes to ``topics`` and reads its parcel-state topic from its current end."""

    def __init__(self, bootstrap_servers: str, topics: TopicNames, partitions: int) -> None:
        self.topics = topics
        self.encoder = FastEncoder()
        self.producer = Producer(producer_config(bootstrap_servers, **{"linger.ms": 1}))
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap_servers,
                "group.id": f"bench-latency-{topics.prefix}",
                "enable.auto.commit": False,
                # The instrument must not add latency: Tansu holds a fetch for its whole wait.
                "fetch.wait.max.ms": 10,
                "log_level": 3,
            }
        )
        self.consumer.assign([TopicPartition(topics.parcel_state, p, OFFSET_END) for p in range(partitions)])
        self.codec = default_codec()
        #: Event ids of the unit scans published: a state whose latest entry has one came by fan-out.
        self.unit_scan_ids: set[str] = set()

    def publish(self, kind: str, value: dict[str, Any]) -> None:
        value = restamped(kind, value, wall_ms())
        if kind == "scan":
            if not value["tracking_number"]:
                self.unit_scan_ids.add(value["event_id"])
            topic, key, data = self.topics.scans, scan_key(value), self.encoder.encode("ScanEvent", value)
        else:
            topic, key, data = self.topics.manifests, value["handling_unit"], self.encoder.encode("Manifest", value)
        self.producer.produce(topic, key=key.encode(), value=data)
        self.producer.poll(0)

    def read(self, timeout: float) -> list[tuple[float, bool]]:
        """Latency (ms) of each ParcelState that arrived, and whether its latest entry came by fan-out."""
        latencies: list[tuple[float, bool]] = []
        # consume() waits out its timeout unless its batch fills: wait for the first state with poll(),
        # which returns as it arrives, then take what else is there.
        messages = self.consumer.consume(READ_BATCH, timeout=0)
        if not messages:
            first = self.consumer.poll(timeout)
            if first is None:
                return latencies
            messages = [first, *self.consumer.consume(READ_BATCH - 1, timeout=0)]
        arrived = wall_ms()  # for all of them: decoding the first ones is the instrument's time, not the worker's
        for message in messages:
            if message.error() or message.value() is None:
                continue
            state = self.codec.decode(message.value()).value
            history = state["history"]
            by_fanout = bool(history) and history[-1]["event_id"] in self.unit_scan_ids
            latencies.append((float(arrived - state["last_event_time_ms"]), by_fanout))
        return latencies

    def warm_up(self, record: tuple[str, dict[str, Any]], timeout: float) -> bool:
        """Publish one record and wait for a ParcelState: the worker has joined and is processing."""
        self.publish(*record)
        self.producer.flush(10)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.read(0.5):
                return True
        return False

    def run(self, records: Iterator[tuple[str, dict[str, Any]]], rate: float, seconds: float) -> LatencyResult:
        latencies: list[tuple[float, bool]] = []
        interval = 1.0 / rate
        started = time.perf_counter()
        published = 0
        while time.perf_counter() - started < seconds:
            due = started + published * interval
            now = time.perf_counter()
            if due > now:
                # Pacing the offered load: read outputs while waiting for the next record's turn.
                latencies += self.read(min(due - now, 0.05))
                continue
            record = next(records, None)
            if record is None:
                break
            self.publish(*record)
            published += 1
        # Read while the last records are delivered: a blocking flush would hold the states arriving meanwhile.
        deadline = time.monotonic() + FLUSH_SECONDS
        while len(self.producer) and time.monotonic() < deadline:
            self.producer.poll(0)
            latencies += self.read(0.01)
        last_arrival = time.monotonic()
        while time.monotonic() - last_arrival < DRAIN_IDLE_SECONDS:
            arrived = self.read(0.5)
            if arrived:
                latencies += arrived
                last_arrival = time.monotonic()
        return latency_result(rate, published, latencies)

    def close(self) -> None:
        self.producer.flush(10)
        self.consumer.close()
