"""The parcel state machine, in event time.

``apply_scan`` folds one ScanEvent into a ``Parcel`` (the worker's table value) and says what to
publish: a new ParcelState (``changed``), StatusUpdates and SlaEvents.

Rules:

- History is kept in event-time order, ties broken by event id (bisect insertion, no re-sort). The
  same event id twice changes nothing (``duplicate``). A late, older event fills in the history.
- The current status is the status of the latest event in event time, except that a terminal
  event (DELIVERED, RETURNED) holds against later events that do not reopen it (see
  ``streams.core.taxonomy``). So a late older event never moves the current status backwards; the only
  late event that can change it is a terminal one that the later events do not reopen.
- Last known location: the latest located event up to the current one. Carrier: the current one's.
- Estimated delivery: the promise is ``ordered_time + SlaRules.promise_for(service_level)``; the
  window is counted from the current event's time, so it moves when the parcel is delayed: the
  learned p5-p95 of the remaining time after the current step on the parcel's route and service
  level (``streams.core.estimates``) when the caller passes the learner and it has enough
  deliveries of that key, else the typical remaining share of the promise after the milestone
  (``REMAINING_SHARE``). Delivered:
  the delivery time. Returned, returning, lost or export cancelled: no estimate. ``on_time`` is
  false once the window's latest end passes the promise or the promise SLA is breached.
- Status updates follow the customer-visible timeline: the statuses of the history, in event
  time, with consecutive equal (status, sub_status) merged into one run. Each run is one update;
  ``update_id`` is a hash of (tracking number, status, sub_status, occurrence of that pair in the
  timeline), so the same journey yields the same ids whatever the order or duplication of its
  events. A late event that adds a run to the past timeline is published then too (with its own,
  older ``event_time_ms``); consumers that only notify the current status compare event times.
  ``sequence`` counts this parcel's updates in publication order, from 1.
- Shipment facts (service level, merchant, order time) come from the first scan that carries
  them (ORDER_CREATED) and are written once (``streams.core.authority``, which also keeps the last
  mile to one carrier); scans before it work without them, and the estimate and promise are
  computed once it arrives.
- Replays: the parcel records, for its last ``MAX_RECORDED_INPUTS`` inputs (scan event ids and
  SLA due ticks), the StatusUpdates and SlaEvents each produced. The same input again is a
  duplicate that changes nothing and returns those recorded outputs (``Outcome.replayed``), so a
  worker that crashed after storing the parcel but before publishing can publish them again,
  identical. An input older than the record is a duplicate with nothing to re-send.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from streams.core.authority import check_scan
from streams.core.estimates import DeliveryEstimates, estimate_key
from streams.core.rules import SlaRules
from streams.core.sla import assess
from streams.core.stages import NO_OBSERVATIONS, StageObservations, StageProgress, advance, step
from streams.core.taxonomy import Classification, InvalidScanError, classify

#: Share of the service level's promise typically still ahead after each milestone:
#: (earliest, latest) of the delivery window, counted from the current event's time.
REMAINING_SHARE: Final[dict[str, tuple[float, float]]] = {
    "ordered": (0.5, 1.0),
    "origin": (0.45, 0.9),
    "export_customs": (0.4, 0.8),
    "linehaul_booked": (0.35, 0.7),
    "linehaul": (0.25, 0.6),
    "arrival": (0.12, 0.35),
    "import_customs": (0.1, 0.3),
    "hub": (0.08, 0.25),
    "last_mile": (0.03, 0.15),
    "out_for_delivery": (0.0, 0.03),
    "delivery_attempt": (0.05, 0.15),
    "exception": (0.15, 0.4),
}
#: Inputs whose outputs a parcel remembers for re-sending (a whole journey in one batch is ~20-25
#: inputs: the table value is written once per batch, so its last batch must fit).
MAX_RECORDED_INPUTS: Final = 32
#: Sub-statuses with no delivery to estimate.
NO_ESTIMATE_SUB_STATUSES: Final = frozenset({"returning_to_sender", "returned_to_sender", "lost", "export_cancelled"})


def _entry_key(entry: dict[str, Any]) -> tuple[int, str]:
    return entry["event_time_ms"], entry["event_id"]


def _run_key(classification: Classification) -> str:
    return f"{classification.status}|{classification.sub_status}"


def update_id(tracking_number: str, status: str, sub_status: str, occurrence: int) -> str:
    """Stable id of the ``occurrence``-th run of (status, sub_status) in a parcel's timeline."""
    return hashlib.sha256(f"{tracking_number}|{status}|{sub_status}|{occurrence}".encode()).hexdigest()[:32]


def sla_due_input_id(tick: str) -> str:
    """Input id of an SLA due tick (the event-time clock value the timer sent), apart from event ids."""
    return f"sla-due:{tick}"


#: The StatusUpdate fields a record keeps; the others are the history entry's (``event_id`` names it).
RECORDED_UPDATE_FIELDS: Final = (
    "update_id",
    "event_id",
    "previous_status",
    "estimated_delivery",
    "on_time",
    "route",
    "merchant",
    "sequence",
)


class RecordedOutputs(NamedTuple):
    """What one applied input published: its StatusUpdates, compact (the values of
    ``RECORDED_UPDATE_FIELDS``: the history keeps the rest), and its SlaEvent dicts."""

    status_updates: list[list[Any]]
    sla_events: list[dict[str, Any]]


@dataclass(slots=True)
class Parcel:
    tracking_number: str
    #: HistoryEntry dicts in (event_time_ms, event_id) order.
    history: list[dict[str, Any]] = field(default_factory=list)
    shipment: dict[str, Any] | None = None
    #: (event_time_ms, event_id) of the scan the shipment came from.
    shipment_key: tuple[int, str] | None = None
    #: Per scan code, its earliest event: (event_time_ms, event_id, location code).
    first_seen: dict[str, tuple[int, str, str | None]] = field(default_factory=dict)
    #: Index in ``history`` of the event that sets the current status.
    current_index: int = 0
    #: Runs of each "status|sub_status" in the timeline so far (the occurrences of update ids).
    run_counts: dict[str, int] = field(default_factory=dict)
    update_sequence: int = 0
    estimated_delivery: dict[str, Any] | None = None
    estimate_on_time: bool = True
    sla_emitted: set[str] = field(default_factory=set)
    #: Open SLA rules: rule → (kind, deadline_ms).
    sla_open: dict[str, tuple[str, int]] = field(default_factory=dict)
    #: The last MAX_RECORDED_INPUTS applied inputs, oldest first: input id → the outputs it produced.
    recorded: dict[str, RecordedOutputs] = field(default_factory=dict)
    #: The current stage stay and what dwell was observed (``streams.core.stages``).
    stages: StageProgress = field(default_factory=StageProgress)
    event_ids: set[str] = field(default_factory=set, repr=False, compare=False)

    # --- derived views -------------------------------------------------------------------------

    @property
    def current(self) -> Classification:
        return classify(self.history[self.current_index]["code"])

    @property
    def status(self) -> str:
        return self.history[self.current_index]["status"]

    @property
    def sub_status(self) -> str:
        return self.history[self.current_index]["sub_status"]

    @property
    def last_event_time_ms(self) -> int:
        return self.history[-1]["event_time_ms"]

    @property
    def ordered_time_ms(self) -> int | None:
        return self.shipment["ordered_time_ms"] if self.shipment else None

    @property
    def service_level(self) -> str | None:
        return self.shipment["service_level"] if self.shipment else None

    @property
    def merchant(self) -> str | None:
        return self.shipment.get("merchant") if self.shipment else None

    @property
    def carrier(self) -> str | None:
        return self.history[self.current_index]["carrier"] if self.history else None

    @property
    def route(self) -> str | None:
        """Lane as origin-arrival-destination, e.g. HGH-LGG-BE, from what is known so far."""
        departed = self.first_seen.get("LINEHAUL_DEPARTED")
        arrived = self.first_seen.get("LINEHAUL_ARRIVED") or self.first_seen.get("LINEHAUL_UNLOADED")
        origin = departed[2] if departed and departed[2] else (self.shipment or {}).get("origin_country")
        parts = [origin, arrived[2] if arrived else None, (self.shipment or {}).get("destination_country")]
        return "-".join(part for part in parts if part) or None

    @property
    def last_location(self) -> dict[str, Any] | None:
        for index in range(self.current_index, -1, -1):
            location = self.history[index]["location"]
            if location is not None:
                return location
        return None

    @property
    def on_time(self) -> bool:
        breached = self.sla_open.get("promise", ("", 0))[0] == "breach"
        return self.estimate_on_time and not breached

    @property
    def open_sla(self) -> list[str]:
        return [f"{rule}:{kind}" for rule, (kind, _deadline) in sorted(self.sla_open.items())]

    def record(self, input_id: str, status_updates: list[dict[str, Any]], sla_events: list[dict[str, Any]]) -> None:
        """Remember what ``input_id`` produced, forgetting the oldest input beyond the bound."""
        compact = [[update[name] for name in RECORDED_UPDATE_FIELDS] for update in status_updates]
        self.recorded[input_id] = RecordedOutputs(compact, sla_events)
        if len(self.recorded) > MAX_RECORDED_INPUTS:
            del self.recorded[next(iter(self.recorded))]

    def replay(self, input_id: str) -> Outcome:
        """The outcome of an input applied before: a duplicate, with its recorded outputs if any."""
        recorded = self.recorded.get(input_id)
        if recorded is None:
            return Outcome(self, changed=False, duplicate=True)
        return Outcome(
            self,
            changed=False,
            duplicate=True,
            status_updates=[self._recorded_update(values) for values in recorded.status_updates],
            sla_events=list(recorded.sla_events),
            replayed=True,
        )

    def _recorded_update(self, values: list[Any]) -> dict[str, Any]:
        recorded = dict(zip(RECORDED_UPDATE_FIELDS, values, strict=True))
        entry = next(entry for entry in self.history if entry["event_id"] == recorded["event_id"])
        return _update_record(self.tracking_number, entry, **recorded)

    def first_time(self, codes: Collection[str]) -> int | None:
        """Earliest event time among scans with one of ``codes``."""
        times = [seen[0] for code in codes if (seen := self.first_seen.get(code)) is not None]
        return min(times, default=None)

    # --- serialisation -------------------------------------------------------------------------

    def to_record(self) -> dict[str, Any]:
        """The ParcelState dict (schemas/avro/parcel_state.v2.avsc)."""
        last = self.history[-1]
        shipment = self.shipment or {}
        return {
            "tracking_number": self.tracking_number,
            "status": self.status,
            "sub_status": self.sub_status,
            "last_event_id": last["event_id"],
            "last_event_time_ms": last["event_time_ms"],
            "last_location": self.last_location,
            "estimated_delivery": self.estimated_delivery,
            "on_time": self.on_time,
            "service_level": self.service_level,
            "route": self.route,
            "stage": self.stages.stage,
            "stage_entered_ms": self.stages.entered_ms,
            "carrier": self.carrier,
            "destination_postcode": shipment.get("destination_postcode"),
            "merchant": self.merchant,
            "history": list(self.history),
            "open_sla": self.open_sla,
            "version": len(self.history),
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe table value; ``Parcel.from_dict`` restores it."""
        return {
            "tracking_number": self.tracking_number,
            "history": list(self.history),
            "shipment": self.shipment,
            "shipment_key": list(self.shipment_key) if self.shipment_key else None,
            "first_seen": {code: list(seen) for code, seen in self.first_seen.items()},
            "current_index": self.current_index,
            "run_counts": dict(self.run_counts),
            "update_sequence": self.update_sequence,
            "estimated_delivery": self.estimated_delivery,
            "estimate_on_time": self.estimate_on_time,
            "sla_emitted": sorted(self.sla_emitted),
            "sla_open": {rule: [kind, deadline] for rule, (kind, deadline) in self.sla_open.items()},
            "recorded": [[input_id, updates, events] for input_id, (updates, events) in self.recorded.items()],
            "stages": self.stages.to_list(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Parcel:
        history = list(data["history"])
        shipment_key = data.get("shipment_key")
        return cls(
            tracking_number=data["tracking_number"],
            history=history,
            shipment=data.get("shipment"),
            shipment_key=(shipment_key[0], shipment_key[1]) if shipment_key else None,
            first_seen={code: (seen[0], seen[1], seen[2]) for code, seen in data.get("first_seen", {}).items()},
            current_index=data.get("current_index", 0),
            run_counts=dict(data.get("run_counts", {})),
            update_sequence=data.get("update_sequence", 0),
            estimated_delivery=data.get("estimated_delivery"),
            estimate_on_time=data.get("estimate_on_time", True),
            sla_emitted=set(data.get("sla_emitted", ())),
            sla_open={rule: (value[0], value[1]) for rule, value in data.get("sla_open", {}).items()},
            recorded={
                input_id: RecordedOutputs(updates, events) for input_id, updates, events in data.get("recorded", ())
            },
            stages=StageProgress.from_list(data.get("stages")),
            event_ids={entry["event_id"] for entry in history},
        )


@dataclass(slots=True)
class Outcome:
    parcel: Parcel
    changed: bool  # publish parcel.to_record() and store the parcel
    duplicate: bool
    status_updates: list[dict[str, Any]] = field(default_factory=list)
    sla_events: list[dict[str, Any]] = field(default_factory=list)
    #: A duplicate found in the record: the outputs are those it produced when first applied, to
    #: publish again (with the parcel's current ParcelState); the parcel did not change.
    replayed: bool = False
    #: Stage stays that ended and the transit, to observe once (``streams.core.stages.advance``).
    observations: StageObservations = NO_OBSERVATIONS
    #: The parcel's next SLA deadline after this outcome (``streams.core.sla.next_deadline_ms``),
    #: computed with its SLA evaluation when ``deadline_known`` (not for duplicates).
    next_deadline_ms: int | None = None
    deadline_known: bool = False


@dataclass(frozen=True, slots=True)
class _Run:
    classification: Classification
    occurrence: int
    index: int  # history index of the event that started the run
    previous_status: str | None


def _history_entry(scan: dict[str, Any], classification: Classification) -> dict[str, Any]:
    return {
        "event_id": scan["event_id"],
        "code": classification.code,
        "raw_code": scan.get("raw_code") or classification.code,
        "status": classification.status,
        "sub_status": classification.sub_status,
        "event_time_ms": scan["event_time_ms"],
        "utc_offset_minutes": scan.get("utc_offset_minutes") or 0,
        "location": scan.get("location"),
        "carrier": scan.get("carrier") or "",
        "reason": scan.get("reason"),
    }


def _check_scan(parcel: Parcel | None, scan: dict[str, Any]) -> tuple[str, Classification]:
    """Validate before anything changes, so a rejected scan leaves the parcel as it was."""
    classification = classify(scan.get("code", ""))
    tracking_number = scan.get("tracking_number")
    if not tracking_number:
        raise InvalidScanError("missing_tracking_number", f"scan {scan.get('event_id')!r} has no tracking_number")
    if parcel is not None and parcel.tracking_number != tracking_number:
        raise InvalidScanError(
            "wrong_parcel", f"scan for {tracking_number!r} applied to parcel {parcel.tracking_number!r}"
        )
    if not scan.get("event_id") or not isinstance(scan.get("event_time_ms"), int):
        raise InvalidScanError("malformed_record", f"scan for {tracking_number!r} needs an event_id and event_time_ms")
    return tracking_number, classification


def apply_scan(
    parcel: Parcel | None,
    scan: dict[str, Any],
    rules: SlaRules,
    now_ms: int,
    estimates: DeliveryEstimates | None = None,
) -> Outcome:
    """Apply one parcel ScanEvent dict; mutates and returns ``parcel`` (a new one for ``None``).

    Raises ``InvalidScanError`` (``UnknownScanCode`` for an unknown code) and then changes nothing.
    ``now_ms`` is the event-time clock (``streams.core.clock.EventClock``) for the SLA evaluation.
    With ``estimates`` (the learner, ``streams.core.estimates``) the window is learned where it
    has enough deliveries, and the parcel's first delivery teaches it (the learner is mutated).
    """
    tracking_number, classification = _check_scan(parcel, scan)
    if parcel is None:
        parcel = Parcel(tracking_number)
    event_id: str = scan["event_id"]
    if event_id in parcel.event_ids:
        return parcel.replay(event_id)
    check_scan(parcel.shipment, parcel.history, scan, classification.code)

    entry = _history_entry(scan, classification)
    key = _entry_key(entry)
    index = bisect_right(parcel.history, key, key=_entry_key)
    parcel.history.insert(index, entry)
    parcel.event_ids.add(event_id)

    seen = parcel.first_seen.get(classification.code)
    if seen is None or key < (seen[0], seen[1]):
        location = entry["location"]
        parcel.first_seen[classification.code] = (key[0], key[1], location["code"] if location else None)
    shipment = scan.get("shipment")
    if shipment and parcel.shipment is None:
        parcel.shipment = shipment
        parcel.shipment_key = key

    if index == len(parcel.history) - 1:
        new_runs = _step_timeline(parcel, index, classification)
        # Appended: a new run means it became current (only the open stay can end); no new run
        # (held, or the same sub-status) leaves the stages as they were.
        observations = (
            step(parcel.stages, entry, classification, parcel.ordered_time_ms) if new_runs else NO_OBSERVATIONS
        )
    else:
        new_runs = _rebuild_timeline(parcel)
        observations = advance(parcel.stages, parcel.history, parcel.ordered_time_ms)

    # The learner learns from a parcel's first delivery only: a repeated delivery scan is no new sample.
    delivered = classification.code == "DELIVERED" and parcel.first_seen["DELIVERED"][1] == event_id
    if estimates is not None and delivered and index == parcel.current_index:
        estimates.observe_delivery(parcel.history, index, parcel.shipment)
    _estimate(parcel, rules, estimates)
    sla_events, deadline = assess(parcel, rules, now_ms)
    status_updates = [_status_update(parcel, run) for run in new_runs]
    parcel.record(event_id, status_updates, sla_events)
    return Outcome(
        parcel,
        changed=True,
        duplicate=False,
        status_updates=status_updates,
        sla_events=sla_events,
        observations=observations,
        next_deadline_ms=deadline,
        deadline_known=True,
    )


def apply_sla_due(parcel: Parcel, tick: str, rules: SlaRules, now_ms: int) -> Outcome:
    """Evaluate the parcel's SLA rules at an SLA due tick: ``tick`` names it stably (the timer's
    clock value, carried in the sla-due message) and ``now_ms`` is its event time.

    The same tick again replays the SLA events it produced. A tick that produces nothing changes
    nothing and is not recorded: evaluated again it emits only what the stored parcel has not.
    """
    input_id = sla_due_input_id(tick)
    if input_id in parcel.recorded:
        return parcel.replay(input_id)
    sla_events, deadline = assess(parcel, rules, now_ms)
    if not sla_events:
        return Outcome(parcel, changed=False, duplicate=False, next_deadline_ms=deadline, deadline_known=True)
    parcel.record(input_id, [], sla_events)
    return Outcome(
        parcel, changed=True, duplicate=False, sla_events=sla_events, next_deadline_ms=deadline, deadline_known=True
    )


def _step_timeline(parcel: Parcel, index: int, classification: Classification) -> list[_Run]:
    """The new event is the latest: one fold step (the common, cheap case)."""
    if index == 0:
        parcel.current_index = 0
        parcel.run_counts[_run_key(classification)] = 1
        return [_Run(classification, 1, 0, None)]
    current = parcel.current
    if current.holds_against(classification.code):
        return []
    parcel.current_index = index
    run_key = _run_key(classification)
    if run_key == _run_key(current):
        return []
    occurrence = parcel.run_counts.get(run_key, 0) + 1
    parcel.run_counts[run_key] = occurrence
    return [_Run(classification, occurrence, index, current.status)]


def _rebuild_timeline(parcel: Parcel) -> list[_Run]:
    """A late event landed inside the history: fold the whole timeline again (histories are short)
    and return the runs it did not have before."""
    counts: dict[str, int] = {}
    runs: list[_Run] = []
    current: Classification | None = None
    current_index = 0
    for index, entry in enumerate(parcel.history):
        classification = classify(entry["code"])
        if current is not None and current.holds_against(classification.code):
            continue
        previous = current
        current, current_index = classification, index
        run_key = _run_key(classification)
        if previous is None or run_key != _run_key(previous):
            counts[run_key] = counts.get(run_key, 0) + 1
            runs.append(_Run(classification, counts[run_key], index, previous.status if previous else None))
    new_runs = [run for run in runs if run.occurrence > parcel.run_counts.get(_run_key(run.classification), 0)]
    parcel.run_counts = counts
    parcel.current_index = current_index
    return new_runs


def _estimate(parcel: Parcel, rules: SlaRules, estimates: DeliveryEstimates | None = None) -> None:
    promised = None
    promise_ms = rules.promise_for(parcel.service_level)
    if parcel.ordered_time_ms is not None:
        promised = parcel.ordered_time_ms + promise_ms
    current_entry = parcel.history[parcel.current_index]
    current = parcel.current
    if current.code == "DELIVERED":
        earliest = latest = current_entry["event_time_ms"]
    elif current.sub_status in NO_ESTIMATE_SUB_STATUSES or current.milestone not in REMAINING_SHARE:
        parcel.estimated_delivery = None
        parcel.estimate_on_time = True
        return
    else:
        anchor = current_entry["event_time_ms"]
        if current.milestone == "ordered" and parcel.ordered_time_ms is not None:
            anchor = parcel.ordered_time_ms
        learned = None
        if estimates is not None:
            key = estimate_key(parcel.history, parcel.current_index, parcel.shipment)
            learned = estimates.window(key, anchor)
        if learned is not None:
            earliest, latest = learned
        else:
            earliest_share, latest_share = REMAINING_SHARE[current.milestone]
            earliest = anchor + int(earliest_share * promise_ms)
            latest = anchor + int(latest_share * promise_ms)
    parcel.estimated_delivery = {"earliest_ms": earliest, "latest_ms": latest, "promised_ms": promised}
    parcel.estimate_on_time = promised is None or latest <= promised


def _status_update(parcel: Parcel, run: _Run) -> dict[str, Any]:
    entry = parcel.history[run.index]
    status, sub_status = run.classification.status, run.classification.sub_status
    parcel.update_sequence += 1
    return _update_record(
        parcel.tracking_number,
        entry,
        update_id=update_id(parcel.tracking_number, status, sub_status, run.occurrence),
        event_id=entry["event_id"],
        previous_status=run.previous_status,
        estimated_delivery=parcel.estimated_delivery,
        on_time=parcel.on_time,
        route=parcel.route,
        merchant=parcel.merchant,
        sequence=parcel.update_sequence,
    )


def _update_record(
    tracking_number: str,
    entry: dict[str, Any],
    *,
    update_id: str,
    event_id: str,
    previous_status: str | None,
    estimated_delivery: dict[str, Any] | None,
    on_time: bool,
    route: str | None,
    merchant: str | None,
    sequence: int,
) -> dict[str, Any]:
    """The StatusUpdate dict of the run that ``entry`` (a history entry) started."""
    return {
        "update_id": update_id,
        "tracking_number": tracking_number,
        "status": entry["status"],
        "sub_status": entry["sub_status"],
        "previous_status": previous_status,
        "event_id": event_id,
        "event_time_ms": entry["event_time_ms"],
        "utc_offset_minutes": entry["utc_offset_minutes"],
        "location": entry["location"],
        "estimated_delivery": estimated_delivery,
        "on_time": on_time,
        "carrier": entry["carrier"] or None,
        "route": route,
        "merchant": merchant,
        "sequence": sequence,
    }
