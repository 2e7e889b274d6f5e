"""The stored parcel (the worker's table value) and how one scan folds into it, in event time.

``fold_scan`` folds one ScanEvent into a ``Parcel``; ``streams.core.apply`` composes it with the
SLA rules and says what to publish: a new ParcelState, StatusUpdates and SlaEvents.

Rules:

- History is kept in event-time order, ties broken by event id. The same event id twice changes
  nothing (``duplicate``). A late, older event fills in the history.
- The current status is the status of the latest event in event time, except that a terminal
  event (DELIVERED, RETURNED) holds against later events that do not reopen it (see
  ``streams.core.taxonomy``). So a late older event never moves the current status backwards; the
  only late event that can change it is a terminal one that the later events do not reopen.
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
- ``version`` counts the parcel's stored changes (every applied scan, every SLA evaluation that
  emitted something, the expiry): a ParcelState with a higher version is newer.
- Life: open → closed (current code DELIVERED, RETURNED or LOST, or expired: no scan for
  ``Retention.expire_ms``, status Expired until a newer scan) → archived ``Retention.retention_ms``
  after closing (the stored parcel becomes a marker that refuses late scans: ``parcel_archived``)
  → gone (the marker is deleted ``expire_ms`` after the archiving). ``streams.core.apply`` decides
  each step when the worker's timer proposes it (``due_ms``), in event time.

What is stored (compact, and flat in the history's length). The parcel keeps only what the rules
read: the shipment facts, the current entry (code, carrier, event), the latest event's key, the
last location, the first time of each code the SLA rules and the route read, the run counts, the
estimate, the route the learned estimate reads followed up to the latest entry (``RouteFold``) and
the SLA state. The history itself is a ``History``: each entry is encoded once, when it arrives, by
an ``EntryCodec`` (the worker's writes the Avro bytes of a ParcelState history entry, so the
ParcelState is spliced from them), appended to one byte string and never encoded again. Only a
late event (older than the latest) decodes the entries, to insert itself and fold the timeline
again, and so does a first delivery for the learner (``observe_delivery`` reads every entry); a
scan appended after the latest takes its estimate key from the route fold. The decoded entries are
kept (``History.decoded``) and stepped by the next appends and inserts until the caller drops them
(``History.forget``: the worker's warm cache keeps them for its newest parcels only), so late scans
in a row decode once. The replay record of
earlier versions is gone: the worker keeps the outputs of its last batch in its own outbox
(docs/streams.md, "Delivery semantics").
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple, Protocol

from streams.core import authority
from streams.core.estimates import NO_ROUTE, DeliveryEstimates, RouteFold, estimate_key, folded_key, route_fold
from streams.core.rules import (
    ARRIVAL_CODES,
    CUSTOMS_CLEARED_CODES,
    DELIVERED_CODES,
    HANDOVER_CODES,
    SlaRules,
)
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

#: Sub-statuses with no delivery to estimate.
NO_ESTIMATE_SUB_STATUSES: Final = frozenset({"returning_to_sender", "returned_to_sender", "lost", "export_cancelled"})
#: History entries a parcel keeps at most (``PARCELSTREAM_MAX_SCANS_PER_PARCEL``); a journey has ~20.
MAX_SCANS_PER_PARCEL: Final = 500
#: Encoded history bytes a parcel keeps at most: with its other fields, its stored value stays under
#: the broker's record limit (1 MiB) even before compression, whatever the scans carry.
MAX_HISTORY_BYTES: Final = 768 * 1024
#: Codes whose first time the SLA rules read (``first_seen``; ``streams.core.sla._milestone_times``).
RULE_CODES: Final = ARRIVAL_CODES | DELIVERED_CODES | HANDOVER_CODES | CUSTOMS_CLEARED_CODES
#: Codes whose first location names the route (``Parcel.route``).
ROUTE_CODES: Final = frozenset({"LINEHAUL_DEPARTED", "LINEHAUL_ARRIVED", "LINEHAUL_UNLOADED"})
#: Current codes that close a parcel (its retention starts).
CLOSING_CODES: Final = frozenset({"DELIVERED", "RETURNED", "LOST"})
EXPIRED_STATUS: Final = ("Expired", "expired")
#: Characters of an sla_event_id the parcel keeps to know it emitted it (a collision within one
#: parcel's few dozen events is out of reach at 48 bits).
EMITTED_ID_CHARS: Final = 12


def _entry_key(entry: dict[str, Any]) -> tuple[int, str]:
    return entry["event_time_ms"], entry["event_id"]


def _run_key(classification: Classification) -> str:
    # A sub-status belongs to one status (taxonomy), so it names the run on its own.
    return classification.sub_status


def update_id(tracking_number: str, status: str, sub_status: str, occurrence: int) -> str:
    """Stable id of the ``occurrence``-th run of (status, sub_status) in a parcel's timeline."""
    return hashlib.sha256(f"{tracking_number}|{status}|{sub_status}|{occurrence}".encode()).hexdigest()[:32]


class EntryCodec(Protocol):
    """Encodes history entries once and decodes them on the rare paths that need them all."""

    def encode(self, entry: dict[str, Any]) -> bytes: ...

    def decode(self, blob: bytes, sizes: list[int]) -> list[dict[str, Any]]: ...

    def mentions(self, blob: bytes, event_id: str) -> bool:
        """Whether ``blob`` may hold an entry with this event id (no false negatives)."""
        ...


class JsonEntryCodec:
    """Entries as compact JSON (the pure core's default; the worker uses Avro)."""

    def encode(self, entry: dict[str, Any]) -> bytes:
        return json.dumps(entry, separators=(",", ":")).encode()

    def decode(self, blob: bytes, sizes: list[int]) -> list[dict[str, Any]]:
        entries, offset = [], 0
        for size in sizes:
            entries.append(json.loads(blob[offset : offset + size]))
            offset += size
        return entries

    def mentions(self, blob: bytes, event_id: str) -> bool:
        return json.dumps(event_id).encode() in blob


JSON_ENTRIES: Final = JsonEntryCodec()


@dataclass(slots=True)
class History:
    """A parcel's history entries, encoded once each, in (event_time_ms, event_id) order."""

    codec: EntryCodec = JSON_ENTRIES
    blob: bytes = b""
    sizes: list[int] = field(default_factory=list)
    #: (event_time_ms, event_id) of the latest entry.
    last_key: tuple[int, str] | None = None
    #: The worker's stored form of a prefix of ``blob`` (compressed chunks of entries), set with
    #: ``memo_entries``: the leading entries no insert has moved since. An entry inserted before the
    #: end lowers it to its index, so only the chunks after the insert are stale (late scans land
    #: near the end: the chunks before them are not compressed again).
    memo: Any = field(default=None, compare=False)
    #: The entries as last decoded, kept up to date by ``append`` and ``insert`` until ``forget``:
    #: a parcel's late scans often come several in a row (unit fan-out copies), each needing them all.
    decoded: list[dict[str, Any]] | None = field(default=None, compare=False)
    #: Leading entries ``memo`` still stands for (set by the worker with it, lowered by ``insert``).
    memo_entries: int = field(default=0, compare=False)

    def __len__(self) -> int:
        return len(self.sizes)

    def entries(self) -> list[dict[str, Any]]:
        """Every entry, decoded (late events, tests and ``parcelstream parcels show`` only): a new
        list the caller may change, of entries it must not change."""
        if self.decoded is None:
            self.decoded = self.codec.decode(self.blob, self.sizes)
        return list(self.decoded)

    def forget(self) -> None:
        """Drop the decoded entries (memory: a stored parcel keeps only its bytes)."""
        self.decoded = None

    def contains(self, event_id: str) -> bool:
        if not self.codec.mentions(self.blob, event_id):
            return False
        return any(entry["event_id"] == event_id for entry in self.entries())

    def append(self, entry: dict[str, Any], data: bytes) -> None:
        """Add the latest entry (``data``: its encoding): its bytes go at the end, nothing else is
        encoded again."""
        self.blob += data
        self.sizes.append(len(data))
        self.last_key = _entry_key(entry)
        if self.decoded is not None:
            self.decoded.append(entry)

    def insert(self, entry: dict[str, Any], data: bytes) -> list[dict[str, Any]]:
        """Add an entry older than the latest at its place; returns every entry, decoded."""
        entries = self.entries()
        key = _entry_key(entry)
        index = len(entries)  # after the last entry not later than it: searched from the end, where late scans land
        while index and _entry_key(entries[index - 1]) > key:
            index -= 1
        offset = sum(self.sizes[:index])
        self.blob = self.blob[:offset] + data + self.blob[offset:]
        self.sizes.insert(index, len(data))
        self.memo_entries = min(self.memo_entries, index)
        entries.insert(index, entry)
        self.decoded = entries
        return list(entries)

    def copy(self) -> History:
        decoded = None if self.decoded is None else list(self.decoded)
        return History(self.codec, self.blob, list(self.sizes), self.last_key, self.memo, decoded, self.memo_entries)


class CurrentEntry(NamedTuple):
    """What the parcel keeps of the entry that sets its current status."""

    event_time_ms: int
    event_id: str
    code: str
    carrier: str


@dataclass(slots=True)
class Parcel:
    """The stored parcel: what the rules need, and the encoded history."""

    tracking_number: str
    history: History = field(default_factory=History)
    shipment: dict[str, Any] | None = None
    #: (event_time_ms, event_id) of the scan the shipment came from.
    shipment_key: tuple[int, str] | None = None
    current_entry: CurrentEntry | None = None
    #: Location of the latest located entry up to the current one, and of the latest overall.
    last_location: dict[str, Any] | None = None
    latest_location: dict[str, Any] | None = None
    #: Per code of RULE_CODES: its earliest event time.
    first_seen: dict[str, int] = field(default_factory=dict)
    #: Per code of ROUTE_CODES: its earliest event, (event_time_ms, event_id, location code).
    route_points: dict[str, tuple[int, str, str | None]] = field(default_factory=dict)
    #: Runs of each sub-status in the timeline so far (the occurrences of update ids).
    run_counts: dict[str, int] = field(default_factory=dict)
    update_sequence: int = 0
    estimated_delivery: dict[str, Any] | None = None
    estimate_on_time: bool = True
    #: Prefixes (EMITTED_ID_CHARS) of the sla_event_ids emitted.
    sla_emitted: set[str] = field(default_factory=set)
    #: Open SLA rules: rule → (kind, deadline_ms).
    sla_open: dict[str, tuple[str, int]] = field(default_factory=dict)
    #: Stored changes so far: the ParcelState's version.
    version: int = 0
    #: When the parcel expired (its latest event + Retention.expire_ms); None while it is not expired.
    expired_at_ms: int | None = None
    #: Set on an archived parcel's marker (nothing else is kept): when it was archived.
    archived_at_ms: int | None = None
    #: The carrier the parcel's last-mile scans name (``streams.core.authority``).
    last_mile_carrier: str | None = None
    #: The current stage stay and what dwell was observed (``streams.core.stages``).
    stages: StageProgress = field(default_factory=StageProgress)
    #: The estimate route as followed up to the latest entry (``streams.core.estimates.RouteFold``);
    #: None: not known (a parcel stored before it was kept), folded from the history when needed.
    route_fold: RouteFold | None = None

    # --- derived views -------------------------------------------------------------------------

    @property
    def current(self) -> Classification:
        assert self.current_entry is not None
        return classify(self.current_entry.code)

    @property
    def status(self) -> str:
        return EXPIRED_STATUS[0] if self.expired_at_ms is not None else self.current.status

    @property
    def sub_status(self) -> str:
        return EXPIRED_STATUS[1] if self.expired_at_ms is not None else self.current.sub_status

    @property
    def closed_since_ms(self) -> int | None:
        """Event time the parcel closed (delivered, returned, lost, expired); None while open."""
        if self.expired_at_ms is not None:
            return self.expired_at_ms
        if self.current_entry is not None and self.current_entry.code in CLOSING_CODES:
            return self.current_entry.event_time_ms
        return None

    @property
    def last_event_time_ms(self) -> int:
        assert self.history.last_key is not None
        return self.history.last_key[0]

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
        return (self.current_entry.carrier or None) if self.current_entry else None

    @property
    def route(self) -> str | None:
        """Lane as origin-arrival-destination, e.g. HGH-LGG-BE, from what is known so far."""
        departed = self.route_points.get("LINEHAUL_DEPARTED")
        arrived = self.route_points.get("LINEHAUL_ARRIVED") or self.route_points.get("LINEHAUL_UNLOADED")
        origin = departed[2] if departed and departed[2] else (self.shipment or {}).get("origin_country")
        parts = [origin, arrived[2] if arrived else None, (self.shipment or {}).get("destination_country")]
        return "-".join(part for part in parts if part) or None

    @property
    def on_time(self) -> bool:
        breached = self.sla_open.get("promise", ("", 0))[0] == "breach"
        return self.estimate_on_time and not breached

    @property
    def open_sla(self) -> list[str]:
        return [f"{rule}:{kind}" for rule, (kind, _deadline) in sorted(self.sla_open.items())]

    def has_emitted(self, sla_event_id: str) -> bool:
        return sla_event_id[:EMITTED_ID_CHARS] in self.sla_emitted

    def mark_emitted(self, sla_event_id: str) -> None:
        self.sla_emitted.add(sla_event_id[:EMITTED_ID_CHARS])

    # --- serialisation -------------------------------------------------------------------------

    def to_record_head(self) -> dict[str, Any]:
        """The ParcelState dict (schemas/avro/parcel_state.v2.avsc) without its history."""
        assert self.history.last_key is not None
        shipment = self.shipment or {}
        return {
            "tracking_number": self.tracking_number,
            "status": self.status,
            "sub_status": self.sub_status,
            "last_event_id": self.history.last_key[1],
            "last_event_time_ms": self.history.last_key[0],
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
            "open_sla": self.open_sla,
            "version": self.version,
        }

    def to_record(self) -> dict[str, Any]:
        """The whole ParcelState dict, history decoded (the worker splices the encoded one)."""
        record = self.to_record_head()
        record["history"] = self.history.entries()
        return record

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe stored fields, history aside (short keys: one per parcel, millions of parcels);
        ``Parcel.from_dict`` restores them with the history."""
        data: dict[str, Any] = {"tn": self.tracking_number, "v": self.version}
        if self.archived_at_ms is not None:
            data["archived"] = self.archived_at_ms
            return data  # a marker keeps nothing else
        if self.expired_at_ms is not None:
            data["expired"] = self.expired_at_ms
        if self.history.last_key is not None:
            data["last"] = list(self.history.last_key)
        current = self.current_entry
        if current is not None and (current.event_time_ms, current.event_id) == self.history.last_key:
            data["cur"] = [current.code, current.carrier]  # the latest entry (the common case)
        elif current is not None:
            data["cur"] = list(current)
        if self.shipment is not None:
            data["ship"] = self.shipment
            data["ship_key"] = list(self.shipment_key) if self.shipment_key else None
        if self.last_location is not None:
            data["loc"] = self.last_location
        if self.latest_location is not None and self.latest_location != self.last_location:
            data["latest_loc"] = self.latest_location
        elif self.latest_location is not None:
            data["latest_loc"] = 1  # the same as ``loc``: stored once
        if self.first_seen:
            data["first"] = self.first_seen
        if self.route_points:
            data["route"] = {code: list(point) for code, point in self.route_points.items()}
        data["runs"] = self.run_counts
        data["seq"] = self.update_sequence
        if self.estimated_delivery is not None:
            data["eta"] = self.estimated_delivery
        if not self.estimate_on_time:
            data["eta_late"] = 1
        if self.sla_emitted:
            data["sla_sent"] = sorted(self.sla_emitted)
        if self.sla_open:
            data["sla_open"] = {rule: [kind, deadline] for rule, (kind, deadline) in self.sla_open.items()}
        if self.last_mile_carrier is not None:
            data["last_mile"] = self.last_mile_carrier
        if self.stages != StageProgress():
            data["stages"] = self.stages.to_list()
        if self.route_fold is not None and self.history.last_key is not None:
            origin, arrival, departed, located = self.route_fold
            data["rf"] = [origin, arrival, int(departed), int(located)]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], history: History) -> Parcel:
        last = data.get("last")
        history.last_key = (last[0], last[1]) if last else None
        shipment_key = data.get("ship_key")
        current = data.get("cur")
        if current and len(current) == 2 and last:
            current = [last[0], last[1], *current]
        location = data.get("loc")
        latest = data.get("latest_loc")
        fold = data.get("rf")
        return cls(
            tracking_number=data["tn"],
            history=history,
            shipment=data.get("ship"),
            shipment_key=(shipment_key[0], shipment_key[1]) if shipment_key else None,
            current_entry=CurrentEntry(*current) if current else None,
            last_location=location,
            latest_location=location if latest == 1 else latest,
            first_seen=dict(data.get("first", {})),
            route_points={code: (p[0], p[1], p[2]) for code, p in data.get("route", {}).items()},
            run_counts=dict(data.get("runs", {})),
            update_sequence=data.get("seq", 0),
            estimated_delivery=data.get("eta"),
            estimate_on_time=not data.get("eta_late"),
            sla_emitted=set(data.get("sla_sent", ())),
            sla_open={rule: (value[0], value[1]) for rule, value in data.get("sla_open", {}).items()},
            version=data.get("v", 0),
            expired_at_ms=data.get("expired"),
            archived_at_ms=data.get("archived"),
            last_mile_carrier=data.get("last_mile"),
            stages=StageProgress.from_list(data.get("stages")),
            route_fold=RouteFold(fold[0], fold[1], bool(fold[2]), bool(fold[3])) if fold else _unknown_fold(last),
        )

    def copy(self) -> Parcel:
        """An independent copy (undo snapshots, restarts in tests): every container the core
        changes in place is copied; values it only replaces (shipment, locations, estimate) are
        shared."""
        stages = self.stages
        return Parcel(
            tracking_number=self.tracking_number,
            history=self.history.copy(),
            shipment=self.shipment,
            shipment_key=self.shipment_key,
            current_entry=self.current_entry,
            last_location=self.last_location,
            latest_location=self.latest_location,
            first_seen=dict(self.first_seen),
            route_points=dict(self.route_points),
            run_counts=dict(self.run_counts),
            update_sequence=self.update_sequence,
            estimated_delivery=self.estimated_delivery,
            estimate_on_time=self.estimate_on_time,
            sla_emitted=set(self.sla_emitted),
            sla_open=dict(self.sla_open),
            version=self.version,
            expired_at_ms=self.expired_at_ms,
            archived_at_ms=self.archived_at_ms,
            last_mile_carrier=self.last_mile_carrier,
            stages=StageProgress(stages.stage, stages.entered_ms, stages.observed_until_ms, stages.transit_observed),
            route_fold=self.route_fold,
        )


def _unknown_fold(last: list[Any] | None) -> RouteFold | None:
    """No stored fold: none needed before the first entry; else not known (stored before it was kept)."""
    return None if last else NO_ROUTE


class Run(NamedTuple):  # a tuple: one or more made per scan, cheaper than a frozen dataclass
    """A run of the customer-visible timeline that a fold added: its first entry and occurrence."""

    classification: Classification
    occurrence: int
    entry: dict[str, Any]
    previous_status: str | None


def history_entry(scan: dict[str, Any], classification: Classification) -> dict[str, Any]:
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


def check_scan(parcel: Parcel | None, scan: dict[str, Any]) -> tuple[str, Classification]:
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


class Fold(NamedTuple):
    parcel: Parcel
    duplicate: bool
    #: Timeline runs the scan added (each one StatusUpdate).
    runs: list[Run]
    #: Stage stays that ended and the transit, to observe once (``streams.core.stages``).
    observations: StageObservations = NO_OBSERVATIONS


def fold_scan(
    parcel: Parcel | None,
    scan: dict[str, Any],
    rules: SlaRules,
    *,
    codec: EntryCodec = JSON_ENTRIES,
    max_scans: int = MAX_SCANS_PER_PARCEL,
    estimates: DeliveryEstimates | None = None,
) -> Fold:
    """Fold one parcel ScanEvent dict into ``parcel`` (a new one for ``None``, its history encoded
    by ``codec``): history, shipment, milestones, current entry, runs and estimate. Raises
    ``InvalidScanError`` (``too_many_scans`` past ``max_scans`` entries) and then changes nothing.
    With ``estimates`` (the learner, ``streams.core.estimates``) the window is learned where it has
    enough deliveries, and the parcel's first delivery teaches it (the learner is mutated)."""
    tracking_number, classification = check_scan(parcel, scan)
    if parcel is None:
        parcel = Parcel(tracking_number, History(codec), route_fold=NO_ROUTE)
    if parcel.archived_at_ms is not None:
        raise InvalidScanError(
            "parcel_archived", f"parcel {tracking_number!r} was closed and archived; a late scan starts no new history"
        )
    history = parcel.history
    event_id: str = scan["event_id"]
    if history.contains(event_id):
        return Fold(parcel, True, [])
    authority.check_scan(parcel.shipment, parcel.last_mile_carrier, scan, classification.code)
    if len(history) >= max_scans:
        raise InvalidScanError(
            "too_many_scans", f"parcel {tracking_number!r} has {len(history)} scans, the most one parcel keeps"
        )

    entry = history_entry(scan, classification)
    data = history.codec.encode(entry)
    if len(history.blob) + len(data) > MAX_HISTORY_BYTES:
        raise InvalidScanError(
            "too_many_scans",
            f"parcel {tracking_number!r} keeps {len(history.blob)} bytes of history; a scan of {len(data)} "
            f"more passes the {MAX_HISTORY_BYTES} bytes one parcel keeps",
        )
    key = _entry_key(entry)
    code = classification.code
    _note_facts(parcel, entry, key, scan.get("shipment"))

    entries: list[dict[str, Any]] | None = None
    if history.last_key is None or key > history.last_key:
        history.append(entry, data)
        if parcel.route_fold is not None:
            parcel.route_fold = parcel.route_fold.step(code, entry["location"])
        was_expired = parcel.expired_at_ms is not None
        parcel.expired_at_ms = None  # a newer scan: the parcel is not silent any more
        runs = _step_timeline(parcel, entry, classification, was_expired)
        # Appended: a new run means it became current (only the open stay can end); no new run
        # (held, or the same sub-status) leaves the stages as they were.
        observations = step(parcel.stages, entry, classification, parcel.ordered_time_ms) if runs else NO_OBSERVATIONS
    else:
        entries = history.insert(entry, data)
        parcel.route_fold = route_fold(entries)
        runs = _rebuild_timeline(parcel, entries)
        observations = advance(parcel.stages, entries, parcel.ordered_time_ms)
    if estimates is not None:
        current = parcel.current_entry
        first_delivery = code == "DELIVERED" and parcel.first_seen.get("DELIVERED") == key[0]
        if first_delivery and current is not None and current.event_id == event_id:
            # The learner learns from a parcel's first delivery only: a repeated one is no new
            # sample. It reads the route as known at each entry: the history is decoded for it.
            entries = entries if entries is not None else history.entries()
            index = next(i for i, other in enumerate(entries) if other["event_id"] == event_id)
            estimates.observe_delivery(entries, index, parcel.shipment)
    _estimate(parcel, rules, estimates, entries)
    return Fold(parcel, False, runs, observations)


def _note_facts(parcel: Parcel, entry: dict[str, Any], key: tuple[int, str], shipment: dict[str, Any] | None) -> None:
    """The milestones, route points, shipment and last-mile carrier the new entry brings."""
    code = entry["code"]
    if code in RULE_CODES and (code not in parcel.first_seen or key[0] < parcel.first_seen[code]):
        parcel.first_seen[code] = key[0]
    point = parcel.route_points.get(code)
    if code in ROUTE_CODES and (point is None or key < (point[0], point[1])):
        location = entry["location"]
        parcel.route_points[code] = (key[0], key[1], location["code"] if location else None)
    if shipment and parcel.shipment is None:  # written once (streams.core.authority)
        parcel.shipment = shipment
        parcel.shipment_key = key
    if code in authority.LAST_MILE_CODES and entry["carrier"] and parcel.last_mile_carrier is None:
        parcel.last_mile_carrier = entry["carrier"]


def current_estimate_key(parcel: Parcel, entries: list[dict[str, Any]] | None = None) -> str | None:
    """The estimate key of the parcel's current entry (``streams.core.estimates.estimate_key``):
    from the route fold when the current entry is the latest (a scan's common case), else from the
    history (``entries``, decoded when not given)."""
    current = parcel.current_entry
    assert current is not None
    fold = parcel.route_fold
    if fold is not None and (current.event_time_ms, current.event_id) == parcel.history.last_key:
        return folded_key(fold, current.code, parcel.shipment)
    if entries is None:
        entries = parcel.history.entries()
    if fold is None:  # stored before the fold was kept: folded once, then stepped
        parcel.route_fold = route_fold(entries)
    index = next(i for i, other in enumerate(entries) if other["event_id"] == current.event_id)
    return estimate_key(entries, index, parcel.shipment)


def _current_of(entry: dict[str, Any]) -> CurrentEntry:
    return CurrentEntry(entry["event_time_ms"], entry["event_id"], entry["code"], entry["carrier"])


def _step_timeline(
    parcel: Parcel, entry: dict[str, Any], classification: Classification, was_expired: bool = False
) -> list[Run]:
    """The new entry is the latest: one fold step (the common, cheap case). After an expiry the
    new entry always starts a run (the customer saw Expired)."""
    if entry["location"] is not None:
        parcel.latest_location = entry["location"]
    if parcel.current_entry is None:
        parcel.current_entry = _current_of(entry)
        parcel.last_location = parcel.latest_location
        parcel.run_counts[_run_key(classification)] = 1
        return [Run(classification, 1, entry, None)]
    current = parcel.current
    if current.holds_against(classification.code):
        return []
    parcel.current_entry = _current_of(entry)
    parcel.last_location = parcel.latest_location
    run_key = _run_key(classification)
    if run_key == _run_key(current) and not was_expired:
        return []
    occurrence = parcel.run_counts.get(run_key, 0) + 1
    parcel.run_counts[run_key] = occurrence
    return [Run(classification, occurrence, entry, EXPIRED_STATUS[0] if was_expired else current.status)]


def _rebuild_timeline(parcel: Parcel, entries: list[dict[str, Any]]) -> list[Run]:
    """A late entry landed inside the history: fold the whole timeline again and return the runs it
    did not have before. One pass: the runs, the current entry and both locations (the latest
    located entry up to the current one, and overall)."""
    before = parcel.run_counts
    counts: dict[str, int] = {}
    new_runs: list[Run] = []
    current: Classification | None = None
    current_entry: dict[str, Any] | None = None
    last_location = latest_location = None
    for entry in entries:
        location = entry["location"]
        if location is not None:
            latest_location = location
        classification = classify(entry["code"])
        if current is not None and current.holds_against(classification.code):
            continue
        current_entry, last_location = entry, latest_location
        run_key = _run_key(classification)
        if current is None or run_key != _run_key(current):
            occurrence = counts[run_key] = counts.get(run_key, 0) + 1
            if occurrence > before.get(run_key, 0):
                new_runs.append(Run(classification, occurrence, entry, current.status if current else None))
        current = classification
    assert current_entry is not None
    if EXPIRED_STATUS[1] in before:  # expiries are not in the history: keep their count
        counts[EXPIRED_STATUS[1]] = before[EXPIRED_STATUS[1]]
    parcel.run_counts = counts
    parcel.current_entry = _current_of(current_entry)
    parcel.last_location = last_location
    parcel.latest_location = latest_location
    return new_runs


def _estimate(
    parcel: Parcel,
    rules: SlaRules,
    estimates: DeliveryEstimates | None = None,
    entries: list[dict[str, Any]] | None = None,
) -> None:
    """The estimated delivery window; learned (``estimates``; ``entries``: the history, when the
    fold decoded it) where the learner knows enough, else the heuristic share of the promise."""
    promised = None
    promise_ms = rules.promise_for(parcel.service_level)
    if parcel.ordered_time_ms is not None:
        promised = parcel.ordered_time_ms + promise_ms
    assert parcel.current_entry is not None
    current_time_ms = parcel.current_entry.event_time_ms
    current = parcel.current
    if current.code == "DELIVERED":
        earliest = latest = current_time_ms
    elif current.sub_status in NO_ESTIMATE_SUB_STATUSES or current.milestone not in REMAINING_SHARE:
        parcel.estimated_delivery = None
        parcel.estimate_on_time = True
        return
    else:
        anchor = current_time_ms
        if current.milestone == "ordered" and parcel.ordered_time_ms is not None:
            anchor = parcel.ordered_time_ms
        learned = None
        if estimates is not None:
            learned = estimates.window(current_estimate_key(parcel, entries), anchor)
        if learned is not None:
            earliest, latest = learned
        else:
            earliest_share, latest_share = REMAINING_SHARE[current.milestone]
            earliest = anchor + int(earliest_share * promise_ms)
            latest = anchor + int(latest_share * promise_ms)
    parcel.estimated_delivery = {"earliest_ms": earliest, "latest_ms": latest, "promised_ms": promised}
    parcel.estimate_on_time = promised is None or latest <= promised


def archived_marker(parcel: Parcel, archived_at_ms: int) -> Parcel:
    """What is left of an archived parcel: its number and when it was archived."""
    return Parcel(
        parcel.tracking_number, History(parcel.history.codec), version=parcel.version + 1, archived_at_ms=archived_at_ms
    )


def expired_update(parcel: Parcel) -> dict[str, Any]:
    """The StatusUpdate of a parcel that just expired (no scan started it: no location, no carrier)."""
    assert parcel.expired_at_ms is not None
    status, sub_status = EXPIRED_STATUS
    occurrence = parcel.run_counts.get(sub_status, 0) + 1
    parcel.run_counts[sub_status] = occurrence
    parcel.update_sequence += 1
    return {
        "update_id": update_id(parcel.tracking_number, status, sub_status, occurrence),
        "tracking_number": parcel.tracking_number,
        "status": status,
        "sub_status": sub_status,
        "previous_status": parcel.current.status,
        "event_id": f"expired:{parcel.expired_at_ms}",
        "event_time_ms": parcel.expired_at_ms,
        "utc_offset_minutes": 0,
        "location": None,
        "estimated_delivery": None,
        "on_time": parcel.on_time,
        "carrier": None,
        "route": parcel.route,
        "merchant": parcel.merchant,
        "sequence": parcel.update_sequence,
    }


def status_update(parcel: Parcel, run: Run) -> dict[str, Any]:
    """The StatusUpdate dict of a run the last fold added (after the SLA evaluation: on_time)."""
    entry = run.entry
    status, sub_status = run.classification.status, run.classification.sub_status
    parcel.update_sequence += 1
    return {
        "update_id": update_id(parcel.tracking_number, status, sub_status, run.occurrence),
        "tracking_number": parcel.tracking_number,
        "status": entry["status"],
        "sub_status": entry["sub_status"],
        "previous_status": run.previous_status,
        "event_id": entry["event_id"],
        "event_time_ms": entry["event_time_ms"],
        "utc_offset_minutes": entry["utc_offset_minutes"],
        "location": entry["location"],
        "estimated_delivery": parcel.estimated_delivery,
        "on_time": parcel.on_time,
        "carrier": entry["carrier"] or None,
        "route": parcel.route,
        "merchant": parcel.merchant,
        "sequence": parcel.update_sequence,
    }
