"""The hub's stages, and how long a parcel stays in each, in event time.

Operations count a parcel's journey in five stages (``STAGES``), each a group of the taxonomy's
milestones (``STAGE_OF_MILESTONE``): export customs, linehaul (departed until arrived), import
customs (arrived at the destination until cleared: the customs SLA counts from arrival too), the
hub (received until handed over) and last mile (handed over until delivered). Other milestones
(ordered, origin, linehaul booked, delivered, returned, exception) are no stage.

A **stay** is a run of consecutive steps of the parcel's timeline in one stage: the timeline is the
sequence of events that became current in event time, so a terminal event holds against later
upstream scans here exactly as it does for the status (``Classification.holds_against``). A stay
ends when the next step is in another stage (or in none); a parcel that comes back to a stage
starts a new stay there.

**Observations.** ``advance`` returns the stays that closed since the parcel last advanced, each
once, and the end-to-end transit (order to delivery) once, when the parcel is first delivered with its
order time known (a late ORDER_CREATED brings it). A late scan can reshape the past
(split a stay, move its start), but never counts a stay twice: the parcel remembers the latest end
of the stays it observed (``StageProgress.observed_until_ms``), and only stays that end after it
are observed. A late scan that fills in a stay never seen (the parcel's first scans came late) is
observed when it arrives if the stay ends after every observed one, the usual case; one slotted in
before an observed stay is not: better to miss a stay than to count one twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from schemas.stages import STAGES
from streams.core.taxonomy import Classification, classify

__all__ = ["STAGES", "STAGE_OF_MILESTONE", "StageObservations", "StageProgress", "Stay", "advance", "stays", "step"]

STAGE_OF_MILESTONE: Final[dict[str, str]] = {
    "export_customs": "export_customs",
    "linehaul": "linehaul",
    "arrival": "import_customs",
    "import_customs": "import_customs",
    "hub": "hub",
    "last_mile": "last_mile",
    "out_for_delivery": "last_mile",
    "delivery_attempt": "last_mile",
}

#: The code whose first time current ends the transit.
_DELIVERED: Final = "DELIVERED"


class Stay(NamedTuple):
    """A run of the timeline in one stage (``stage`` None: in no stage); ``left_ms`` None while open."""

    stage: str | None
    entered_ms: int
    left_ms: int | None


@dataclass(slots=True)
class StageProgress:
    """What a stored parcel remembers about its stages (four small values)."""

    #: The stage of the current stay and since when (event time); None when in no stage.
    stage: str | None = None
    entered_ms: int | None = None
    #: Latest end of an observed stay: stays ending at or before it were counted.
    observed_until_ms: int | None = None
    transit_observed: bool = False

    def to_list(self) -> list[Any]:
        return [self.stage, self.entered_ms, self.observed_until_ms, self.transit_observed]

    @classmethod
    def from_list(cls, values: Sequence[Any] | None) -> StageProgress:
        if not values:
            return cls()
        stage, entered_ms, observed_until_ms, transit_observed = values
        return cls(stage, entered_ms, observed_until_ms, bool(transit_observed))


@dataclass(frozen=True, slots=True)
class StageObservations:
    """What to observe after a change: closed stays as (stage, seconds), and the transit in seconds."""

    dwell: list[tuple[str, float]] = field(default_factory=list)
    transit_seconds: float | None = None

    def __bool__(self) -> bool:
        return bool(self.dwell) or self.transit_seconds is not None


NO_OBSERVATIONS: Final = StageObservations()


def stage_of(classification: Classification) -> str | None:
    return STAGE_OF_MILESTONE.get(classification.milestone)


def stays(history: Sequence[dict[str, Any]]) -> tuple[list[Stay], dict[str, Any] | None]:
    """The stays of a history (HistoryEntry dicts in event-time order) and its current entry."""
    result: list[Stay] = []
    current: Classification | None = None
    current_entry: dict[str, Any] | None = None
    for entry in history:
        classification = classify(entry["code"])
        if current is not None and current.holds_against(classification.code):
            continue
        current, current_entry = classification, entry
        stage = stage_of(classification)
        if result:
            last = result[-1]
            if last.stage == stage:
                continue
            result[-1] = Stay(last.stage, last.entered_ms, entry["event_time_ms"])
        result.append(Stay(stage, entry["event_time_ms"], None))
    return result, current_entry


def step(
    progress: StageProgress, entry: dict[str, Any], classification: Classification, ordered_time_ms: int | None
) -> StageObservations:
    """``advance`` for the common case: ``entry`` (of ``classification``) was appended to the history
    and became current. Only the open stay can end, so nothing else of the history is read."""
    time_ms: int = entry["event_time_ms"]
    stage = stage_of(classification)
    dwell: list[tuple[str, float]] = []
    if stage != progress.stage:
        if progress.stage is not None and progress.entered_ms is not None:
            until = progress.observed_until_ms
            if until is None or time_ms > until:
                dwell.append((progress.stage, (time_ms - progress.entered_ms) / 1000))
                progress.observed_until_ms = time_ms
        progress.stage = stage
        progress.entered_ms = time_ms if stage is not None else None
    transit = None
    if classification.code == _DELIVERED and ordered_time_ms is not None and not progress.transit_observed:
        progress.transit_observed = True
        transit = (time_ms - ordered_time_ms) / 1000 if time_ms >= ordered_time_ms else None
    if not dwell and transit is None:
        return NO_OBSERVATIONS
    return StageObservations(dwell, transit)


def advance(
    progress: StageProgress, history: Sequence[dict[str, Any]], ordered_time_ms: int | None
) -> StageObservations:
    """Bring ``progress`` up to date with ``history``; returns what to observe (each stay once)."""
    all_stays, current = stays(history)
    if current is None:
        return NO_OBSERVATIONS
    dwell: list[tuple[str, float]] = []
    until = progress.observed_until_ms
    for stay in all_stays:
        left = stay.left_ms
        if stay.stage is None or left is None or (until is not None and left <= until):
            continue
        dwell.append((stay.stage, (left - stay.entered_ms) / 1000))
    closed = [stay.left_ms for stay in all_stays if stay.stage is not None and stay.left_ms is not None]
    if closed:
        progress.observed_until_ms = max(closed) if until is None else max(until, *closed)
    last = all_stays[-1]
    progress.stage = last.stage
    progress.entered_ms = last.entered_ms if last.stage is not None else None
    transit = None
    if current["code"] == _DELIVERED and ordered_time_ms is not None and not progress.transit_observed:
        progress.transit_observed = True
        delivered = current["event_time_ms"]
        transit = (delivered - ordered_time_ms) / 1000 if delivered >= ordered_time_ms else None
    if not dwell and transit is None:
        return NO_OBSERVATIONS
    return StageObservations(dwell, transit)
