"""SLA rules (schemas.sla.SLA_RULES) evaluated on a parcel in event time: at-risk warnings, breaches
and recoveries, each emitted exactly once.

Each rule is a window ``start → deadline`` and a "met" moment, all taken from the parcel's history
(the earliest event of a kind, so they do not depend on arrival order):

- ``promise``: order (Shipment.ordered_time_ms) + the service level's promise → delivered. Needs
  the shipment data (ORDER_CREATED); without it the rule waits.
- ``customs_clearance``: linehaul arrival (LINEHAUL_ARRIVED/UNLOADED) + 24 h → import customs
  cleared (IMPORT_CUSTOMS_CLEARED or any scan that can only follow it: hub departure, last mile).
- ``hub_dwell``: linehaul arrival + 12 h → last-mile handover (or any later last-mile scan).
- ``last_mile_delivery``: handover + 48 h → delivered.
- ``silence``: latest scan + N h while the parcel is InTransit or OutForDelivery → any newer scan
  (the next scan starts a new window with a new deadline) or leaving those statuses.

"Delivered" means DELIVERED or AVAILABLE_FOR_PICKUP (the carrier's part is done). A returned
parcel (terminal RETURNED) is finished: its rules stop and their open warnings close without event.

Per rule and deadline: ``at_risk`` fires once the clock passes ``start + at_risk_fraction ×
(deadline − start)``; ``breach`` fires once the clock passes the deadline (or when the milestone
is met after it, so a late milestone still counts as a breach); ``recovered`` fires when the
milestone is met (or the deadline moves) after an at_risk or breach. Nothing fires when the
milestone is met before the at-risk point. ``sla_event_id`` is stable per (tracking_number, rule,
kind, deadline); the parcel remembers the ids it emitted, so each fires exactly once.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final, NamedTuple

from schemas.sla import SLA_RULES
from streams.core.parcel import Parcel
from streams.core.rules import (
    ARRIVAL_CODES,
    CUSTOMS_CLEARED_CODES,
    DELIVERED_CODES,
    HANDOVER_CODES,
    SILENCE_STATUSES,
    SlaRules,
)


class Window(NamedTuple):  # a tuple: several made per evaluation, cheaper than a frozen dataclass
    start_ms: int
    deadline_ms: int
    met_ms: int | None  # when the milestone was met; None while it is not


def sla_event_id(tracking_number: str, rule: str, kind: str, deadline_ms: int) -> str:
    return hashlib.sha256(f"{tracking_number}|{rule}|{kind}|{deadline_ms}".encode()).hexdigest()[:32]


#: The milestones the rules read, each met by the earliest scan of one of its codes: delivered,
#: arrived at the destination, handed over to the last mile, import customs cleared.
_MILESTONES: Final = (DELIVERED_CODES, ARRIVAL_CODES, HANDOVER_CODES, CUSTOMS_CLEARED_CODES)
#: Per code, the milestones (indexes in ``_MILESTONES``) it meets.
_MILESTONES_OF: Final = {
    code: tuple(index for index, codes in enumerate(_MILESTONES) if code in codes)
    for code in frozenset().union(*_MILESTONES)
}


def _milestone_times(first_seen: dict[str, int]) -> list[int | None]:
    """The earliest time the parcel saw a code of each of ``_MILESTONES`` (None: not met), in one
    pass over the few codes it has seen instead of a look-up of every code of each set."""
    times: list[int | None] = [None] * len(_MILESTONES)
    for code, time_ms in first_seen.items():
        for index in _MILESTONES_OF.get(code, ()):
            earliest = times[index]
            if earliest is None or time_ms < earliest:
                times[index] = time_ms
    return times


def windows(parcel: Parcel, rules: SlaRules) -> dict[str, Window]:
    """The window of every rule that applies to the parcel now (finished parcels: none)."""
    current = parcel.current
    if current.terminal and current.code == "RETURNED":
        return {}
    found: dict[str, Window] = {}
    delivered, arrived, handover, cleared = _milestone_times(parcel.first_seen)
    ordered = parcel.ordered_time_ms
    if ordered is not None:
        found["promise"] = Window(ordered, ordered + rules.promise_for(parcel.service_level), delivered)
    if arrived is not None:
        found["customs_clearance"] = Window(arrived, arrived + rules.customs_clearance_ms, cleared)
        found["hub_dwell"] = Window(arrived, arrived + rules.hub_dwell_ms, handover)
    if handover is not None:
        found["last_mile_delivery"] = Window(handover, handover + rules.last_mile_delivery_ms, delivered)
    if parcel.status in SILENCE_STATUSES:
        last = parcel.last_event_time_ms
        found["silence"] = Window(last, last + rules.silence_ms, None)
    return found


def _at_risk_ms(window: Window, rules: SlaRules) -> int:
    return window.start_ms + int(rules.at_risk_fraction * (window.deadline_ms - window.start_ms))


def evaluate(parcel: Parcel, rules: SlaRules, now_ms: int) -> list[dict[str, Any]]:
    """SlaEvent dicts due at ``now_ms`` (event-time clock) not yet emitted for this parcel.

    Records what it returns on the parcel (emitted ids, open rules), so call it once per outcome
    and publish everything it returns. When it returns events, ``parcel.open_sla`` changed too.
    """
    return assess(parcel, rules, now_ms)[0]


def assess(parcel: Parcel, rules: SlaRules, now_ms: int) -> tuple[list[dict[str, Any]], int | None]:
    """``evaluate``'s events and the parcel's ``next_deadline_ms`` after them, from one computation
    of the rule windows (they depend on the history, which evaluating does not change)."""
    events: list[dict[str, Any]] = []
    current = windows(parcel, rules)
    finished = not current and parcel.current.code == "RETURNED"

    def emit(rule: str, kind: str, deadline_ms: int) -> bool:
        event_id = sla_event_id(parcel.tracking_number, rule, kind, deadline_ms)
        if parcel.has_emitted(event_id):
            return False
        parcel.mark_emitted(event_id)
        events.append(
            {
                "sla_event_id": event_id,
                "tracking_number": parcel.tracking_number,
                "rule": rule,
                "kind": kind,
                "deadline_ms": deadline_ms,
                "observed_ms": now_ms,
                "route": parcel.route,
                "carrier": parcel.carrier,
                "service_level": parcel.service_level,
            }
        )
        return True

    for rule in SLA_RULES:
        window = current.get(rule)
        opened = parcel.sla_open.get(rule)
        if opened is not None and (window is None or window.deadline_ms != opened[1]):
            # The condition that opened it is gone: a newer scan (silence), an earlier start found
            # late, or the rule stopped applying. A finished parcel closes without an event.
            del parcel.sla_open[rule]
            if not finished:
                emit(rule, "recovered", opened[1])
        if window is None:
            continue
        deadline = window.deadline_ms
        if window.met_ms is not None:
            if window.met_ms > deadline:
                emit(rule, "breach", deadline)
            if emitted_kind(parcel, rule, "at_risk", deadline) or emitted_kind(parcel, rule, "breach", deadline):
                emit(rule, "recovered", deadline)
            parcel.sla_open.pop(rule, None)
        elif now_ms >= deadline:
            emit(rule, "breach", deadline)
            parcel.sla_open[rule] = ("breach", deadline)
        elif now_ms >= _at_risk_ms(window, rules) and not emitted_kind(parcel, rule, "breach", deadline):
            emit(rule, "at_risk", deadline)
            parcel.sla_open[rule] = ("at_risk", deadline)
    return events, _next_deadline_ms(parcel, current, rules)


def next_deadline_ms(parcel: Parcel, rules: SlaRules) -> int | None:
    """The earliest event time at which ``evaluate`` would emit something with no further scan."""
    return _next_deadline_ms(parcel, windows(parcel, rules), rules)


def _next_deadline_ms(parcel: Parcel, current: dict[str, Window], rules: SlaRules) -> int | None:
    candidates: list[int] = []
    for rule, window in current.items():
        if window.met_ms is not None:
            continue
        deadline = window.deadline_ms
        if emitted_kind(parcel, rule, "breach", deadline):
            continue
        if emitted_kind(parcel, rule, "at_risk", deadline):
            candidates.append(deadline)
        else:
            candidates.append(_at_risk_ms(window, rules))
    return min(candidates, default=None)


def emitted_kind(parcel: Parcel, rule: str, kind: str, deadline_ms: int) -> bool:
    """Whether the parcel already emitted this rule's ``kind`` for ``deadline_ms``."""
    if not parcel.sla_emitted:  # most evaluations: a parcel that emitted nothing yet, no id to hash
        return False
    return parcel.has_emitted(sla_event_id(parcel.tracking_number, rule, kind, deadline_ms))
