"""Prometheus metrics of the stream processor (names as in docs/metrics.md)."""

from __future__ import annotations

import logging
import re
from typing import Final

from prometheus_client import Counter

from schemas.metrics import CONSUMER_LAG, DEAD_LETTERS, EVENT_TIME_LAG, WORKER_UP  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)

SCANS_INGESTED = Counter(
    "parcelstream_scans_ingested_total", "Scans the worker applied or fanned out", ["source", "code"]
)
DUPLICATE_SCANS = Counter(
    "parcelstream_duplicate_scans_total", "Scans ignored because their event id was already applied", ["source"]
)
STATUS_UPDATES = Counter("parcelstream_status_updates_total", "Customer-visible status changes emitted", ["status"])
SLA_EVENTS = Counter(
    "parcelstream_sla_events_total",
    "SLA at-risk, breach and recovered events",
    ["rule", "kind", "route", "carrier"],
)

#: A carrier code shown as itself in the ``carrier`` label: the shape the gateway accepts for a
#: carrier's API key (producers/gateway/keys.py), so both stages label a carrier alike.
CARRIER_LABEL_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
UNKNOWN_CARRIER: Final = "unknown"
OTHER_CARRIER: Final = "other"
#: Distinct carrier label values one process exports; a new carrier beyond them counts as "other".
MAX_CARRIER_LABELS: Final = 100


def carrier_label(carrier: str | None) -> str:
    """The ``carrier`` label value of a carrier code: itself (surrounding blanks removed) when it is a
    1-32 character code of letters, digits, '.', '_', '-'; ``unknown`` when missing or blank;
    ``other`` for anything else (free text, which may hold personal data, never becomes a label)."""
    code = (carrier or "").strip()
    if not code:
        return UNKNOWN_CARRIER
    return code if CARRIER_LABEL_PATTERN.fullmatch(code) else OTHER_CARRIER


class CarrierLabels:
    """``carrier_label`` with a bound on distinct values per process: scans carry whatever carrier
    text their publisher wrote, and each new value would be a new time series for good."""

    def __init__(self, limit: int = MAX_CARRIER_LABELS) -> None:
        self.limit = limit
        self._shown: set[str] = set()
        self._warned = False

    def __call__(self, carrier: str | None) -> str:
        label = carrier_label(carrier)
        if label in (UNKNOWN_CARRIER, OTHER_CARRIER) or label in self._shown:
            return label
        if len(self._shown) < self.limit:
            self._shown.add(label)
            return label
        if not self._warned:
            self._warned = True
            log.warning("more than %d carriers seen: new ones count as carrier=%r", self.limit, OTHER_CARRIER)
        return OTHER_CARRIER
