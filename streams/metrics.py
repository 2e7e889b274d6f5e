"""Prometheus metrics of the stream processor (names as in docs/metrics.md)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

SCANS_INGESTED = Counter(
    "parcelstream_scans_ingested_total", "Scans the worker applied or fanned out", ["source", "code"]
)
DUPLICATE_SCANS = Counter(
    "parcelstream_duplicate_scans_total", "Scans ignored because their event id was already applied", ["source"]
)
DEAD_LETTERS = Counter(
    "parcelstream_dead_letters_total", "Records sent to the dead-letter topic", ["stage", "reason_code"]
)
EVENT_TIME_LAG = Histogram(
    "parcelstream_event_time_lag_seconds",
    "Wall time of processing minus the scan's event time",
    ["stage"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 24 * 3600),
)
CONSUMER_LAG = Gauge(
    "parcelstream_consumer_lag", "Messages behind the partition's end", ["group", "topic", "partition"]
)
STATUS_UPDATES = Counter("parcelstream_status_updates_total", "Customer-visible status changes emitted", ["status"])
SLA_EVENTS = Counter(
    "parcelstream_sla_events_total", "SLA at-risk, breach and recovered events", ["rule", "kind", "route"]
)
WORKER_UP = Gauge("parcelstream_worker_up", "1 while the stage process runs its main loop", ["stage"])
