"""What happens to a stored parcel, composed from the state machine (``parcel``) and the SLA rules
(``sla``): the core decides, the worker stores and publishes.

- ``apply_scan``: fold a scan, evaluate the SLA rules, and say what to publish.
- ``apply_sla_due``: the SLA timer says a deadline has come; evaluate the rules at that event time.
- ``apply_due``: the worker's timer says something is due (``due_ms``): SLA rules, expiry,
  archiving, the end of an archived parcel's marker — decided again at that event time.
- ``apply_erasure``: a customer's erasure request; the parcel is gone.

Every applied change increases ``Parcel.version`` (``changed``), so a ParcelState published for an
SLA change that no scan brought is newer than the previous one and its consumers apply it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from streams.core.estimates import DeliveryEstimates
from streams.core.parcel import (
    JSON_ENTRIES,
    MAX_SCANS_PER_PARCEL,
    EntryCodec,
    Parcel,
    archived_marker,
    expired_update,
    fold_scan,
    status_update,
)
from streams.core.rules import Retention, SlaRules
from streams.core.sla import assess, next_deadline_ms
from streams.core.stages import NO_OBSERVATIONS, StageObservations


@dataclass(slots=True)
class Outcome:
    parcel: Parcel
    changed: bool  # store the parcel and publish its ParcelState
    duplicate: bool
    status_updates: list[dict[str, Any]] = field(default_factory=list)
    sla_events: list[dict[str, Any]] = field(default_factory=list)
    #: The parcel was archived: ``parcel`` is its marker, to store; its ParcelState is a tombstone.
    archived: bool = False
    #: Nothing of the parcel is kept: delete its table entry and timer, publish a ParcelState tombstone.
    gone: bool = False
    #: ``gone`` by an erasure request.
    erased: bool = False
    #: Stage stays that ended and the transit, to observe once (``streams.core.stages.advance``).
    observations: StageObservations = NO_OBSERVATIONS
    #: The parcel's next SLA deadline after this outcome (``streams.core.sla.next_deadline_ms``),
    #: computed with its SLA evaluation when ``deadline_known`` (not for duplicates).
    next_deadline_ms: int | None = None
    deadline_known: bool = False


def apply_scan(
    parcel: Parcel | None,
    scan: dict[str, Any],
    rules: SlaRules,
    now_ms: int,
    estimates: DeliveryEstimates | None = None,
    *,
    codec: EntryCodec = JSON_ENTRIES,
    max_scans: int = MAX_SCANS_PER_PARCEL,
) -> Outcome:
    """Apply one parcel ScanEvent dict; mutates and returns ``parcel`` (a new one for ``None``,
    its history encoded by ``codec``).

    Raises ``InvalidScanError`` (``UnknownScanCode`` for an unknown code, ``too_many_scans`` past
    ``max_scans`` history entries) and then changes nothing. ``now_ms`` is the event-time clock
    (``streams.core.clock.EventClock``) for the SLA evaluation; ``estimates``: the delivery-time
    learner (``streams.core.estimates``), mutated by a first delivery. The same event id again is a
    duplicate that changes nothing and publishes nothing (the worker's outbox re-sends what a
    crash kept from being published).
    """
    fold = fold_scan(parcel, scan, rules, codec=codec, max_scans=max_scans, estimates=estimates)
    if fold.duplicate:
        return Outcome(fold.parcel, changed=False, duplicate=True)
    parcel = fold.parcel
    sla_events, deadline = assess(parcel, rules, now_ms)
    status_updates = [status_update(parcel, run) for run in fold.runs]
    parcel.version += 1
    return Outcome(
        parcel,
        changed=True,
        duplicate=False,
        status_updates=status_updates,
        sla_events=sla_events,
        observations=fold.observations,
        next_deadline_ms=deadline,
        deadline_known=True,
    )


def apply_sla_due(parcel: Parcel, rules: SlaRules, now_ms: int) -> Outcome:
    """Evaluate the parcel's SLA rules at an SLA due tick's event time ``now_ms``.

    A tick that produces nothing changes nothing; the same tick again emits only what the stored
    parcel has not emitted yet (nothing, once stored).
    """
    sla_events, deadline = assess(parcel, rules, now_ms)
    if not sla_events:
        return Outcome(parcel, changed=False, duplicate=False, next_deadline_ms=deadline, deadline_known=True)
    parcel.version += 1
    return Outcome(
        parcel, changed=True, duplicate=False, sla_events=sla_events, next_deadline_ms=deadline, deadline_known=True
    )


#: ``due_ms``'s SLA deadline not known yet (computed from the parcel).
UNKNOWN: Final = object()


def due_ms(parcel: Parcel, rules: SlaRules, retention: Retention, sla_deadline: object = UNKNOWN) -> int | None:
    """The next event time at which ``apply_due`` would do something without a further scan: an SLA
    deadline, the expiry of an open parcel, the archiving of a closed one, the deletion of a marker.
    ``sla_deadline``: the SLA deadline the parcel's last evaluation found (``Outcome.next_deadline_ms``)."""
    if parcel.archived_at_ms is not None:
        return parcel.archived_at_ms + retention.expire_ms
    closed = parcel.closed_since_ms
    life = closed + retention.retention_ms if closed is not None else parcel.last_event_time_ms + retention.expire_ms
    deadline = next_deadline_ms(parcel, rules) if sla_deadline is UNKNOWN else sla_deadline
    return life if deadline is None else min(deadline, life)  # type: ignore[call-overload]


def apply_due(parcel: Parcel, rules: SlaRules, retention: Retention, now_ms: int) -> Outcome:
    """The worker's timer says something is due at event time ``now_ms``: decide again what (a late
    scan may have reopened the parcel since the timer was set).

    - a marker ``expire_ms`` old: ``gone`` (the worker deletes it);
    - a parcel closed ``retention_ms`` ago: ``archived`` (the worker stores ``outcome.parcel``, a
      marker, and publishes a ParcelState tombstone);
    - an open parcel silent for ``expire_ms``: it expires (status Expired, a StatusUpdate), changed;
    - otherwise its SLA rules are evaluated (``apply_sla_due``).
    """
    if parcel.archived_at_ms is not None:
        gone = now_ms >= parcel.archived_at_ms + retention.expire_ms
        return Outcome(parcel, changed=False, duplicate=False, gone=gone)
    closed = parcel.closed_since_ms
    if closed is not None and now_ms >= closed + retention.retention_ms:
        marker = archived_marker(parcel, closed + retention.retention_ms)
        return Outcome(marker, changed=True, duplicate=False, archived=True)
    outcome = apply_sla_due(parcel, rules, now_ms)
    expires_at = parcel.last_event_time_ms + retention.expire_ms
    if closed is None and now_ms >= expires_at:
        parcel.expired_at_ms = expires_at
        outcome.status_updates.append(expired_update(parcel))
        parcel.estimated_delivery = None
        if not outcome.changed:
            parcel.version += 1
        outcome.changed = True
    return outcome


def apply_erasure(parcel: Parcel | None, tracking_number: str) -> Outcome:
    """A customer's erasure request: every trace of the parcel goes (``gone``), whatever its state;
    an absent parcel is erased too (the worker still publishes the tombstones: a replay is safe)."""
    return Outcome(parcel or Parcel(tracking_number), changed=False, duplicate=False, gone=True, erased=True)
