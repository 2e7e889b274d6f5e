"""Prometheus metrics of the stream processor (names as in docs/metrics.md)."""

from __future__ import annotations

from prometheus_client import Counter

from schemas.metrics import CONSUMER_LAG, DEAD_LETTERS, EVENT_TIME_LAG, WORKER_UP  # noqa: F401 (re-exported)

SCANS_INGESTED = Counter(
    "parcelstream_scans_ingested_total", "Scans the worker applied or fanned out", ["source", "code"]
)
DUPLICATE_SCANS = Counter(
    "parcelstream_duplicate_scans_total", "Scans ignored because their event id was already applied", ["source"]
)
STATUS_UPDATES = Counter("parcelstream_status_updates_total", "Customer-visible status changes emitted", ["status"])
SLA_EVENTS = Counter(
    "parcelstream_sla_events_total", "SLA at-risk, breach and recovered events", ["rule", "kind", "route"]
)
