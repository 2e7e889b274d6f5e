"""Prometheus metrics every stage exports under the same name (docs/metrics.md).

Defined once here, like the other shared contracts, so that several stages can live in one
process (the root CLI, the test suite) without registering a name twice. Stage-specific metrics
live in ``<stage>/metrics.py``, which re-exports these.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DEAD_LETTERS = Counter(
    "parcelstream_dead_letters_total", "Records sent to the dead-letter topic", ["stage", "reason_code"]
)
WORKER_UP = Gauge("parcelstream_worker_up", "1 while the stage process runs its main loop", ["stage"])
EVENT_TIME_LAG = Histogram(
    "parcelstream_event_time_lag_seconds",
    "Wall time of processing minus the scan's event time",
    ["stage"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 24 * 3600),
)
CONSUMER_LAG = Gauge(
    "parcelstream_consumer_lag", "Messages behind the partition's end", ["group", "topic", "partition"]
)
