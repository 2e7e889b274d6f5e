"""Prometheus metrics of the stream processor (names as in docs/metrics.md)."""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Histogram

from schemas.metrics import (  # noqa: F401 (re-exported)
    CARRIER_LABEL_PATTERN,
    CONSUMER_LAG,
    DEAD_LETTERS,
    EVENT_TIME_LAG,
    MAX_CARRIER_LABELS,
    MAX_ROUTE_LABELS,
    OTHER,
    ROUTE_LABEL_PATTERN,
    UNKNOWN,
    WORKER_UP,
    BoundedLabels,
    CarrierLabels,
    RouteLabels,
    carrier_label,
    observe_all,
    route_label,
)

SCANS_INGESTED = Counter(
    "parcelstream_scans_ingested_total", "Scans the worker applied or fanned out", ["source", "code"]
)
DUPLICATE_SCANS = Counter(
    "parcelstream_duplicate_scans_total", "Scans ignored because their event id was already applied", ["source"]
)
SLA_CLOCK_JUMPS_REFUSED = Counter(
    "parcelstream_sla_clock_jumps_refused_total",
    "Scans dated more than 15 minutes after the wall clock: the SLA clock (speed 1) stopped at the wall",
)
STATUS_UPDATES = Counter("parcelstream_status_updates_total", "Customer-visible status changes emitted", ["status"])
PARCEL_LIFECYCLE = Counter(
    "parcelstream_parcel_lifecycle_total",
    "Parcels that expired, were archived, whose archive marker ended (gone) or that were erased",
    ["step"],
)
PARCELS_ARCHIVED = PARCEL_LIFECYCLE.labels("archived")
PARCELS_EXPIRED = PARCEL_LIFECYCLE.labels("expired")
PARCELS_GONE = PARCEL_LIFECYCLE.labels("gone")
PARCELS_ERASED = PARCEL_LIFECYCLE.labels("erased")
SLA_EVENTS = Counter(
    "parcelstream_sla_events_total",
    "SLA at-risk, breach and recovered events",
    ["rule", "kind", "route", "carrier"],
)
#: Stays and journeys last hours to weeks (in event time): 10 min to 30 days.
DWELL_BUCKETS: Final = tuple(
    hours * 3600 for hours in (1 / 6, 0.5, 1, 2, 4, 8, 12, 24, 36, 48, 72, 120, 168, 240, 336, 504, 720)
)
STAGE_DWELL = Histogram(
    "parcelstream_stage_dwell_seconds",
    "Event time a parcel spent in a hub stage, observed once when it leaves the stage",
    ["stage", "route"],
    buckets=DWELL_BUCKETS,
)
TRANSIT = Histogram(
    "parcelstream_transit_seconds",
    "Event time from order (or first scan) to delivery, observed once per parcel",
    ["route", "service_level"],
    buckets=DWELL_BUCKETS,
)
