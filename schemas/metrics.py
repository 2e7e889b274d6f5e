"""Prometheus metrics every stage exports under the same name (docs/metrics.md).

Defined once here, like the other shared contracts, so that several stages can live in one
process (the root CLI, the test suite) without registering a name twice. Stage-specific metrics
live in ``<stage>/metrics.py``, which re-exports these.
"""

from __future__ import annotations

import logging
import re
from bisect import bisect_left
from collections.abc import Callable, Sequence
from typing import Final

from prometheus_client import Counter, Gauge, Histogram

log = logging.getLogger(__name__)

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

# -- bounded label values: carriers and routes are publisher text ---------------------------------

#: A carrier code shown as itself in the ``carrier`` label: the shape the gateway accepts for a
#: carrier's API key (producers/gateway/keys.py), so both stages label a carrier alike.
CARRIER_LABEL_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
#: A route shown as itself in the ``route`` label: location and country codes joined by '-' (HGH-LGG-BE;
#: facility ids such as LGG-HUB-1 bring their own '-'), 2 to 64 characters.
ROUTE_LABEL_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,63}")
UNKNOWN: Final = "unknown"
OTHER: Final = "other"
#: Distinct carrier label values one process exports; a new carrier beyond them counts as "other".
MAX_CARRIER_LABELS: Final = 100
#: Distinct route label values one process exports (a hub's lanes: origins x destinations).
MAX_ROUTE_LABELS: Final = 300


def _code_label(value: str | None, pattern: re.Pattern[str]) -> str:
    code = (value or "").strip()
    if not code:
        return UNKNOWN
    return code if pattern.fullmatch(code) else OTHER


def carrier_label(carrier: str | None) -> str:
    """The ``carrier`` label value of a carrier code: itself (surrounding blanks removed) when it is a
    1-32 character code of letters, digits, '.', '_', '-'; ``unknown`` when missing or blank;
    ``other`` for anything else (free text, which may hold personal data, never becomes a label)."""
    return _code_label(carrier, CARRIER_LABEL_PATTERN)


def route_label(route: str | None) -> str:
    """The ``route`` label value of a parcel's route: itself when it has the shape of codes joined by
    '-', ``unknown`` when not known yet, ``other`` for anything else (location codes are free text
    a publisher writes)."""
    return _code_label(route, ROUTE_LABEL_PATTERN)


class BoundedLabels:
    """A label function with a bound on distinct values per process: scans carry whatever text their
    publisher wrote, and each new value would be a new time series for good. ``unknown`` and
    ``other`` do not use up the bound; a value first seen beyond it counts as ``other``."""

    def __init__(self, label_of: Callable[[str | None], str], limit: int, what: str) -> None:
        self.label_of = label_of
        self.limit = limit
        self.what = what
        self._shown: set[str] = set()
        self._warned = False

    def __call__(self, value: str | None) -> str:
        label = self.label_of(value)
        if label in (UNKNOWN, OTHER) or label in self._shown:
            return label
        if len(self._shown) < self.limit:
            self._shown.add(label)
            return label
        if not self._warned:
            self._warned = True
            log.warning("more than %d %s seen: new ones count as %r", self.limit, self.what, OTHER)
        return OTHER


class CarrierLabels(BoundedLabels):
    """``carrier_label``, at most ``limit`` carriers per process."""

    def __init__(self, limit: int = MAX_CARRIER_LABELS) -> None:
        super().__init__(carrier_label, limit, "carriers")


class RouteLabels(BoundedLabels):
    """``route_label``, at most ``limit`` routes per process."""

    def __init__(self, limit: int = MAX_ROUTE_LABELS) -> None:
        super().__init__(route_label, limit, "routes")


def observe_all(histogram: Histogram, values: Sequence[float]) -> None:
    """``histogram.observe(value)`` for each of ``values`` (finite numbers; ``histogram``: a labelled
    child) with one increment per bucket and one of the sum: a batch's observations cost a few
    increments instead of a lock and a bucket search each. prometheus_client has no bulk observe,
    so this reads its bucket bounds and values (tests/schemas/test_metrics.py pins them)."""
    if not values:
        return
    bounds = histogram._upper_bounds  # observe counts a value in the first bucket with value <= bound
    counts = [0] * len(bounds)
    for value in values:
        counts[bisect_left(bounds, value)] += 1
    for bucket, count in zip(histogram._buckets, counts, strict=True):
        if count:
            bucket.inc(count)
    histogram._sum.inc(sum(values))
