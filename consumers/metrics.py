"""Prometheus metrics of the consumers (names as in docs/metrics.md)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from schemas.metrics import CONSUMER_LAG, DEAD_LETTERS, EVENT_TIME_LAG, WORKER_UP  # noqa: F401 (re-exported)

PARCELS = Gauge("parcelstream_parcels", "Parcels per current status in the read model", ["status"])
NOTIFICATIONS = Counter(
    "parcelstream_notifications_total",
    "Notification outcomes: sent, retried, dead_lettered, skipped_duplicate",
    ["channel", "outcome"],
)
