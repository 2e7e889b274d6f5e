"""Prometheus metrics of the producer side (names as in docs/metrics.md)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from schemas.metrics import DEAD_LETTERS, WORKER_UP  # noqa: F401 (re-exported)

SCANS_PUBLISHED = Counter("parcelstream_scans_published_total", "Scans acknowledged by the broker", ["source", "code"])
MANIFESTS_PUBLISHED = Counter(
    "parcelstream_manifests_published_total", "Manifests acknowledged by the broker", ["unit_type"]
)
PUBLISH_FAILURES = Counter(
    "parcelstream_publish_failures_total", "Records the broker did not acknowledge", ["reason_code"]
)
INGEST_REQUESTS = Counter(
    "parcelstream_ingest_requests_total", "HTTP ingest requests", ["carrier", "endpoint", "status_code"]
)
CARRIER_LAST_SCAN = Gauge(
    "parcelstream_carrier_last_scan_timestamp_seconds",
    "Wall time of the carrier's last accepted scan",
    ["carrier", "source"],
)
