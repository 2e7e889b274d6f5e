"""Prometheus metrics of the consumers (names as in docs/metrics.md)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PARCELS = Gauge("parcelstream_parcels", "Parcels per current status in the read model", ["status"])
NOTIFICATIONS = Counter(
    "parcelstream_notifications_total",
    "Notification outcomes: sent, retried, dead_lettered, skipped_duplicate",
    ["channel", "outcome"],
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
WORKER_UP = Gauge("parcelstream_worker_up", "1 while the stage process runs its main loop", ["stage"])
