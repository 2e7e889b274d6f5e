"""The benchmark's data: simulated hub traffic with a fixed seed, encoded once, pre-loaded per contender.

``build_dataset`` runs the hub simulator (``producers.simulator.simulate``) once, sized for
the requested number of scans (about 12 a parcel), keeps the records in publish order up to that many scans (with the
manifests among them), and encodes them as the carriers' publisher does: Avro on the Confluent
wire format, parcel scans keyed by tracking number, unit scans and manifests by unit id.
``preload`` produces the records onto ``<prefix>.scans`` and
``<prefix>.manifests`` with the publisher's producer settings (murmur2 keys, idempotent, acks=all).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Producer

from producers.publisher import scan_key
from producers.simulator import SimulationConfig, simulate
from schemas.codec import default_codec
from schemas.kafka_clients import producer_config
from schemas.topics import TopicNames

DAY_MS = 24 * 3600 * 1000
#: Simulated time of the first order: midnight UTC 120 days ago, so every journey (the longest, by sea,
#: take ~40 days) lies in the past and within the pipeline's event-time bounds (PARCELSTREAM_MAX_AGE,
#: 365 days). The same seed gives the same journeys, shifted by whole days.
SIM_START_MS = (time.time_ns() // 1_000_000 // DAY_MS - 120) * DAY_MS
#: Scans per simulated parcel, a little below the simulator's average, to size the first simulation.
SCANS_PER_PARCEL_ESTIMATE = 12.0


@dataclass(frozen=True)
class EncodedRecord:
    kind: str  # "scan" or "manifest"
    key: bytes
    value: bytes
    unit_scan: bool = False


@dataclass
class Dataset:
    seed: int
    parcels: int
    records: list[EncodedRecord]
    #: Plain (decoded) values in the same order, for runs that re-stamp event times.
    values: list[tuple[str, dict[str, Any]]] = field(repr=False)

    @property
    def scans(self) -> int:
        return sum(1 for record in self.records if record.kind == "scan")

    @property
    def manifests(self) -> int:
        return sum(1 for record in self.records if record.kind == "manifest")

    @property
    def unit_scans(self) -> int:
        return sum(1 for record in self.records if record.unit_scan)

    @property
    def mean_scan_bytes(self) -> float:
        sizes = [len(record.value) for record in self.records if record.kind == "scan"]
        return sum(sizes) / len(sizes) if sizes else 0.0


def build_dataset(scans: int, seed: int) -> Dataset:
    """At least ``scans`` scans of simulated traffic (exactly that many unless fewer were generated)."""
    codec = default_codec()
    parcels = max(1, math.ceil(scans / SCANS_PER_PARCEL_ESTIMATE))
    simulation = simulate(SimulationConfig(seed=seed, parcels=parcels, start_ms=SIM_START_MS))
    records: list[EncodedRecord] = []
    values: list[tuple[str, dict[str, Any]]] = []
    taken = 0
    for timed in simulation.records:
        if taken >= scans:
            break
        if timed.kind == "scan":
            taken += 1
            key = scan_key(timed.value).encode()
            records.append(
                EncodedRecord(
                    "scan", key, codec.encode("ScanEvent", timed.value), unit_scan=not timed.value["tracking_number"]
                )
            )
        else:
            key = str(timed.value["handling_unit"]).encode()
            records.append(EncodedRecord("manifest", key, codec.encode("Manifest", timed.value)))
        values.append((timed.kind, timed.value))
    return Dataset(seed=seed, parcels=parcels, records=records, values=values)


def preload(
    bootstrap_servers: str,
    topics: TopicNames,
    dataset: Dataset,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Produce every record onto ``topics`` and wait until the broker acknowledged them all."""
    producer = Producer(producer_config(bootstrap_servers, **{"linger.ms": 20, "batch.num.messages": 10_000}))
    failures: list[str] = []

    def on_delivery(error: Any, _message: Any) -> None:
        if error is not None:
            failures.append(error.str())

    topic_of = {"scan": topics.scans, "manifest": topics.manifests}
    for index, record in enumerate(dataset.records):
        while True:
            try:
                producer.produce(topic_of[record.kind], key=record.key, value=record.value, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)  # local queue full: serve delivery reports to make room
        if index % 10_000 == 0:
            producer.poll(0)
            if progress is not None:
                progress(index)
    remaining = producer.flush(120)
    if remaining or failures:
        detail = failures[0] if failures else f"{remaining} records unacknowledged after 120 s"
        raise RuntimeError(f"pre-loading {topics.prefix} failed: {len(failures) or remaining} records ({detail})")
    if progress is not None:
        progress(len(dataset.records))
