"""Delivery estimates learned from the parcels delivered so far.

For each delivered parcel, every step of its journey (the sub-status of each scan before the
delivery: ``received_at_hub``, ``held_import``, ``attempt_failed``...) gives one sample: the time
from that scan to the delivery. The samples go to a streaming quantile sketch (a t-digest from
``fastdigest``) per estimate key, ``origin|arrival|destination|step|service level``: the route as
known at that scan (``HGH|LGG|BE`` once the linehaul arrived, ``HGH|-|BE`` after its departure,
the first place scanned before it: ``CN-HGH-WH1|-|BE``), the step and the service level. A
parcel's window is then counted from its current scan: ``[anchor + p_low, anchor + p_high]`` of
its key's remaining times (p5-p95 by default). The step is finer than the taxonomy's milestone on
purpose: a customs hold or a failed attempt is its own key, so the window moves when the anomaly
happens.

Decay (forward decay, Cormode et al. 2009): a sample delivered at ``t`` is added with weight
``2 ** ((t - landmark) / half_life)``, so every sample's weight relative to the newest halves
every ``half_life`` of event time, without touching the old samples. A strike or a holiday that
lengthens a lane takes over its quantiles within a few half-lives (3 days by default). When the
newest weight gets large the sketch is rebased (its weights scaled down, the landmark moved).

A key with fewer than ``min_deliveries`` (decayed, weighed at its newest delivery) backs off to
its route and step over every service level, then to its origin, arrival and step over every
destination, then to its step on every route (``backoff_keys``, learned alongside); when all have
too few there is no window and the caller falls back to the heuristic
(``streams.core.parcel.REMAINING_SHARE``).

Bound: at most ``max_keys`` keys (routes are publisher text); beyond that the key whose latest
delivery is oldest is forgotten. ``to_dict`` / ``from_dict`` give a plain, JSON-safe value per
key (the worker stores it in its ``estimates`` table).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import islice
from typing import Any, Final, NamedTuple

from fastdigest import TDigest

from streams.core.rules import DAY_MS
from streams.core.taxonomy import INFORMATIONAL, classify

#: Codes after which there is no delivery to estimate from or to: the delivery itself, returns.
NOT_ESTIMATED_MILESTONES: Final = frozenset({"delivered", "returning", "returned"})
#: Rebase a sketch once the newest weight exceeds 2 ** REBASE_EXPONENT (floats stay exact enough).
REBASE_EXPONENT: Final = 32.0
#: Centroids lighter than this share of the sketch's mass are dropped at a rebase.
NEGLIGIBLE_WEIGHT: Final = 1e-9
#: A delivery older than the landmark by more half-lives than this weighs under NEGLIGIBLE_WEIGHT: not added.
NEGLIGIBLE_EXPONENT: Final = math.log2(NEGLIGIBLE_WEIGHT)
ARRIVAL_CODES: Final = frozenset({"LINEHAUL_ARRIVED", "LINEHAUL_UNLOADED"})


@dataclass(frozen=True)
class EstimateConfig:
    """How estimates are learned; ``EstimateConfig()`` has the documented defaults."""

    half_life_ms: int = 3 * DAY_MS
    #: Decayed deliveries a key needs before its window replaces the heuristic.
    min_deliveries: float = 10.0
    #: The window's ends: p5-p95. p10-p90 covered 72 % of the deliveries of the benchmark's tuning
    #: seed, not 80 %: parcels on one flight or train share its delay, so the next departure often
    #: falls outside the last ones' p10-p90 (benchmarks/estimates.py; docs/streams.md).
    low_quantile: float = 0.05
    high_quantile: float = 0.95
    #: Centroids per sketch: ~1-2 kB stored per key.
    max_centroids: int = 64
    max_keys: int = 4096

    def __post_init__(self) -> None:
        if self.half_life_ms <= 0:
            raise ValueError(f"half_life_ms must be positive, got {self.half_life_ms}")
        if not 0.0 <= self.low_quantile < self.high_quantile <= 1.0:
            raise ValueError(
                f"need 0 <= low_quantile < high_quantile <= 1, got {self.low_quantile}, {self.high_quantile}"
            )
        if self.min_deliveries < 1 or self.max_centroids < 8 or self.max_keys < 1:
            raise ValueError("min_deliveries >= 1, max_centroids >= 8 and max_keys >= 1 are required")


@dataclass(slots=True)
class LaneSketch:
    """Remaining times (ms) to delivery of one key, forward-decayed from ``landmark_ms``."""

    digest: TDigest
    landmark_ms: int
    latest_ms: int  # event time of the newest delivery added

    def weight_at(self, time_ms: int, half_life_ms: int) -> float:
        """The decayed number of deliveries as seen at ``time_ms``."""
        if self.digest.is_empty():
            return 0.0
        return float(self.digest.mass()) * 2.0 ** ((self.landmark_ms - time_ms) / half_life_ms)

    def add(self, remaining_ms: int, delivered_ms: int, config: EstimateConfig) -> None:
        exponent = (delivered_ms - self.landmark_ms) / config.half_life_ms
        if exponent < NEGLIGIBLE_EXPONENT:
            # Decayed to nothing beside the sketch's newer deliveries; far enough back, the weight is
            # 0.0 as a float, which the t-digest refuses (the delivery scan would fail).
            return
        if exponent > REBASE_EXPONENT:
            self._rebase(delivered_ms, config)
            exponent = 0.0
        self.digest.update(float(remaining_ms), 2.0**exponent)
        self.latest_ms = max(self.latest_ms, delivered_ms)

    def _rebase(self, landmark_ms: int, config: EstimateConfig) -> None:
        scale = 2.0 ** ((self.landmark_ms - landmark_ms) / config.half_life_ms)
        centroids = [(mean, weight * scale) for mean, weight in self.digest.centroids]
        floor = NEGLIGIBLE_WEIGHT * sum(weight for _, weight in centroids)
        self.digest = _digest([(mean, weight) for mean, weight in centroids if weight > floor], config.max_centroids)
        self.landmark_ms = landmark_ms

    def to_dict(self) -> dict[str, Any]:
        return {
            "landmark_ms": self.landmark_ms,
            "latest_ms": self.latest_ms,
            "centroids": [[mean, weight] for mean, weight in self.digest.centroids],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], config: EstimateConfig) -> LaneSketch:
        centroids = [(float(mean), float(weight)) for mean, weight in data["centroids"]]
        return cls(_digest(centroids, config.max_centroids), int(data["landmark_ms"]), int(data["latest_ms"]))


def _digest(centroids: Sequence[tuple[float, float]], max_centroids: int) -> TDigest:
    if not centroids:
        return TDigest(max_centroids)
    return TDigest.from_dict(
        {
            "max_centroids": max_centroids,
            "centroids": [{"m": mean, "c": weight} for mean, weight in centroids],
            "mass": sum(weight for _, weight in centroids),
            "sum": sum(mean * weight for mean, weight in centroids),
            "min": min(mean for mean, _ in centroids),
            "max": max(mean for mean, _ in centroids),
            "n_values": len(centroids),
        }
    )


class RouteFold(NamedTuple):
    """``_routes`` one entry at a time, whatever the shipment: the place naming the origin (None:
    the shipment's origin country), the arrival place ("-": not known yet), whether the linehaul
    departed and whether a place was scanned before it. A parcel keeps the fold of its latest
    entry and steps it with each newer one, so the key of a new scan needs no history (``_routes``,
    which ``estimate_key`` reads, folds the whole history with it)."""

    origin: str | None = None
    arrival: str = "-"
    departed: bool = False
    located: bool = False

    def step(self, code: str, location: dict[str, Any] | None) -> RouteFold:
        """The fold after one more entry (``code`` and ``location`` of a history entry)."""
        place = location.get("code") if location else None
        if code == "LINEHAUL_DEPARTED" and not self.departed:
            return RouteFold(place or self.origin, self.arrival, True, self.located)
        if place and not (self.located or self.departed):
            # Before the departure the first place scanned names the lane (the origin warehouse
            # tells air from rail or sea): a country alone would mix journeys of 4 and 40 days.
            return RouteFold(place, self.arrival, False, True)
        if code in ARRIVAL_CODES and self.arrival == "-" and place:
            return RouteFold(self.origin, place, self.departed, self.located)
        return self

    def route(self, shipment: dict[str, Any]) -> tuple[str, str]:
        """(origin, arrival), "-" for a part not known yet."""
        return self.origin or shipment.get("origin_country") or "-", self.arrival


#: The fold before any entry.
NO_ROUTE: Final = RouteFold()


def route_fold(history: Iterable[dict[str, Any]]) -> RouteFold:
    """The fold after every entry of ``history`` (in event-time order)."""
    fold = NO_ROUTE
    for entry in history:
        fold = fold.step(entry["code"], entry.get("location"))
    return fold


def _routes(history: Sequence[dict[str, Any]], shipment: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(origin, arrival) as known at each history entry ("-" for a part not known yet)."""
    fold = NO_ROUTE
    for entry in history:
        fold = fold.step(entry["code"], entry.get("location"))
        yield fold.route(shipment)


def _key(route: tuple[str, str], code: str, shipment: dict[str, Any]) -> str | None:
    destination = shipment.get("destination_country") or "-"
    return _joined_key(*route, destination, code, shipment.get("service_level") or "standard")


@lru_cache(maxsize=4096)  # called on every scan and for every step a delivery teaches; keys repeat
def _joined_key(origin: str, arrival: str, destination: str, code: str, level: str) -> str | None:
    classification = classify(code)
    if classification.milestone in NOT_ESTIMATED_MILESTONES or code in INFORMATIONAL:
        return None  # an informational scan never becomes the current one: nothing is counted from it
    parts = (origin, arrival, destination, classification.sub_status, level)
    return "|".join(part.replace("|", "/") for part in parts)  # codes are publisher text


def estimate_keys(history: Sequence[dict[str, Any]], shipment: dict[str, Any] | None) -> Iterator[str | None]:
    """The estimate key of each history entry, ``origin|arrival|destination|step|service level``,
    with the route as known at that entry ("-" for a part not known yet); None for entries whose
    step is not estimated. History entries are the parcel's, in event-time order."""
    shipment = shipment or {}
    for entry, route in zip(history, _routes(history, shipment), strict=True):
        yield _key(route, entry["code"], shipment)


def folded_key(fold: RouteFold, code: str, shipment: dict[str, Any] | None) -> str | None:
    """The estimate key of an entry with ``code`` whose route fold (up to it, itself included) is
    ``fold``: ``estimate_key`` without the history."""
    shipment = shipment or {}
    return _key(fold.route(shipment), code, shipment)


def estimate_key(history: Sequence[dict[str, Any]], index: int, shipment: dict[str, Any] | None) -> str | None:
    """The estimate key of ``history[index]`` alone (one per scan: the route is followed up to it,
    one key is built)."""
    shipment = shipment or {}
    route = ("-", "-")
    for route in islice(_routes(history, shipment), index + 1):  # noqa: B007 (the last one is wanted)
        pass
    return _key(route, history[index]["code"], shipment)


@lru_cache(maxsize=4096)  # called on every scan; keys repeat
def backoff_keys(key: str) -> tuple[str, str, str, str]:
    """The key, then the same route and step over every service level, then the same origin,
    arrival and step over every destination and level, then the step on every route: the order in
    which ``window`` tries them (a rare step such as a customs hold is learned over every lane)."""
    origin, arrival, _destination, step, _level = key.split("|")
    return key, key.rsplit("|", 1)[0] + "|*", f"{origin}|{arrival}|*|{step}|*", f"*|*|*|{step}|*"


@dataclass
class DeliveryEstimates:
    """The learner: one ``LaneSketch`` per estimate key. ``changed`` collects the keys modified
    since the caller last cleared it (the worker writes those to its table)."""

    config: EstimateConfig = field(default_factory=EstimateConfig)
    sketches: dict[str, LaneSketch] = field(default_factory=dict)
    changed: set[str] = field(default_factory=set)

    def observe_delivery(
        self, history: Sequence[dict[str, Any]], delivered_index: int, shipment: dict[str, Any] | None
    ) -> int:
        """Learn from a parcel delivered by ``history[delivered_index]``: one sample per earlier
        entry. Returns the number of samples added."""
        delivered_ms: int = history[delivered_index]["event_time_ms"]
        added = 0
        for entry, key in zip(history[:delivered_index], estimate_keys(history, shipment), strict=False):
            if key is None:
                continue
            for learned_key in backoff_keys(key):
                sketch = self.sketches.get(learned_key)
                if sketch is None:
                    sketch = LaneSketch(TDigest(self.config.max_centroids), delivered_ms, delivered_ms)
                    self.sketches[learned_key] = sketch
                    self._bound()
                sketch.add(delivered_ms - entry["event_time_ms"], delivered_ms, self.config)
                self.changed.add(learned_key)
            added += 1
        return added

    def window(self, key: str | None, anchor_ms: int) -> tuple[int, int] | None:
        """(earliest, latest) delivery for a parcel whose current entry has ``key`` and time
        ``anchor_ms``, from the first of its ``backoff_keys`` with ``min_deliveries``; None when
        none has (the caller falls back to the heuristic)."""
        if key is None:
            return None
        config = self.config
        for learned_key in backoff_keys(key):
            sketch = self.sketches.get(learned_key)
            # Enough deliveries as weighed at the key's newest one: a long lane delivers in bursts
            # (one vessel), and its last burst stays the best knowledge until the next one.
            if sketch is None or sketch.weight_at(sketch.latest_ms, config.half_life_ms) < config.min_deliveries:
                continue
            low = sketch.digest.quantile(config.low_quantile)
            high = sketch.digest.quantile(config.high_quantile)
            if math.isfinite(low) and math.isfinite(high):
                return anchor_ms + max(0, round(low)), anchor_ms + max(0, round(high))
        return None

    def _bound(self) -> None:
        excess = len(self.sketches) - self.config.max_keys
        if excess > 0:
            for key in sorted(self.sketches, key=lambda k: self.sketches[k].latest_ms)[:excess]:
                del self.sketches[key]
                self.changed.add(key)  # the caller deletes it from storage

    # --- serialisation -------------------------------------------------------------------------

    def dump(self, key: str) -> dict[str, Any] | None:
        """The stored value of ``key``; None when it was forgotten (delete it)."""
        sketch = self.sketches.get(key)
        return sketch.to_dict() if sketch is not None else None

    def load(self, key: str, data: dict[str, Any]) -> None:
        """Restore one key from its stored value (``dump``)."""
        self.sketches[key] = LaneSketch.from_dict(data, self.config)
        self._bound()

    def to_dict(self) -> dict[str, Any]:
        return {key: sketch.to_dict() for key, sketch in self.sketches.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any], config: EstimateConfig | None = None) -> DeliveryEstimates:
        estimates = cls(config or EstimateConfig())
        for key, value in data.items():
            estimates.load(key, value)
        return estimates
