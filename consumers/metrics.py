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
BACKLOG_PARCELS = Gauge(
    "parcelstream_backlog_parcels", "Parcels now in each hub stage, per route (read model)", ["stage", "route"]
)
BACKLOG_OLDEST = Gauge(
    "parcelstream_backlog_oldest_seconds",
    "Event time since the longest-waiting parcel of each hub stage entered it (0 when the stage is empty)",
    ["stage"],
)
TRACKING_LOOKUPS = Counter(
    "parcelstream_tracking_lookups_total",
    "Parcel look-ups of the tracking service by outcome: allowed, not_found, locked",
    ["outcome"],
)
