"""The Redis read model, as pure functions: which keys exist, how a ParcelState becomes a write plan,
and what customers are shown. No I/O here; ``consumers/projector.py`` applies the plans.

Key layout (``P`` is the configurable prefix, ``PARCELSTREAM_REDIS_PREFIX``; ``TN`` a validated
tracking number; ``{x}`` a percent-encoded value, so no value can add a ``:`` or a glob character):

- ``P:parcel:TN``            hash: the parcel (fields ``PARCEL_FIELDS``, always all of them)
- ``P:status:{status}``      sorted set of TNs in that current status, score = last event time (ms)
- ``P:carrier:{carrier}``    sorted set of TNs whose latest scan came from that carrier
- ``P:route:{route}``        sorted set of TNs on that route
- ``P:sla:{rule:kind}``      sorted set of TNs with that SLA flag open (``rule:kind`` of ParcelState.open_sla)
- ``P:updates:TN``           pub/sub channel: the public view of the parcel after each change
- ``P:backlog:{stage}``      sorted set of TNs in that hub stage, score = when they entered it (event ms)
- ``P:backlog:{stage}:{route}`` the same, per route (the backlog gauges count these)
- ``P:backlog-routes:{stage}`` sorted set of the routes seen in that stage (score 0), to enumerate them

Tracking numbers: upper-cased, then they must match ``^[A-Z0-9]{8,40}$`` (S10 postal ids such as
``LX123456785CN`` and carriers' alphanumeric ids); anything else is rejected before it can become
part of a key. A ParcelState is applied only when its ``version`` is higher than the stored one, so
replays and late, older states change nothing, and replaying the topic gives the same content.
The parcel's hash also keeps the latest move of its estimated window (``estimate_move``): what the
stored state said against what the newer one says, so only the read model can know it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final
from urllib.parse import quote

from schemas.identifiers import is_tracking_number
from schemas.stages import STAGES
from schemas.statuses import STATUSES

#: What a look-up accepts: the canonical rule of schemas/identifiers.py, in any case.
TRACKING_NUMBER_RULE: Final = "8 to 40 letters A-Z (any case) and digits 0-9"
#: SLA flag kinds operations count as open (ParcelState.open_sla holds 'rule:kind').
OPEN_SLA_KINDS: Final = ("at_risk", "breach")

PARCEL_FIELDS: Final[tuple[str, ...]] = (
    "tracking_number",
    "version",
    "status",
    "sub_status",
    "last_event_id",
    "last_event_time_ms",
    "last_location",
    "estimated_delivery",
    "estimate_moved",
    "on_time",
    "open_sla",
    "service_level",
    "carrier",
    "route",
    "merchant",
    "postcode_hash",
    "stage",
    "stage_entered_ms",
    "history",
)


class InvalidRecordError(ValueError):
    """A record the read model cannot take; ``reason_code`` is a metric-safe label."""

    def __init__(self, reason_code: str, reason: str) -> None:
        super().__init__(reason)
        self.reason_code = reason_code
        self.reason = reason


def normalize_tracking_number(raw: str) -> str:
    """The canonical (upper-case) tracking number, or ``InvalidRecordError`` if it is not one."""
    candidate = raw.upper()
    if not is_tracking_number(candidate):
        shown = raw if len(raw) <= 60 else raw[:57] + "..."
        raise InvalidRecordError("invalid_tracking_number", f"tracking number {shown!r} is not {TRACKING_NUMBER_RULE}")
    return candidate


def normalize_postcode(postcode: str) -> str:
    """Postcodes compare without case, spaces or dashes: '1000 bx' == '1000BX'."""
    return re.sub(r"[\s-]", "", postcode).upper()


#: Scheme of the stored postcode hash: ``h1:<key fingerprint>:<HMAC-SHA256>``.
POSTCODE_HASH_SCHEME: Final = "h1"


def postcode_key_fingerprint(key: bytes) -> str:
    """8 hex characters naming a postcode key without revealing it, so a stored hash made with
    another key (or the unkeyed hash of older versions) is recognised and rewritten."""
    return hmac.new(key, b"parcelstream-postcode-key-fingerprint", hashlib.sha256).hexdigest()[:8]


def postcode_hash(key: bytes, tracking_number: str, postcode: str) -> str:
    """HMAC-SHA256, keyed with the server's postcode key, of the parcel's normalised postcode and
    tracking number (equal postcodes of different parcels do not share a hash). Only this is stored,
    never the postcode; without the key, trying every postcode of a country gives nothing. An empty
    key gives an empty hash: postcode look-ups are then off."""
    if not key:
        return ""
    material = f"{tracking_number}\x00{normalize_postcode(postcode)}".encode()
    digest = hmac.new(key, material, hashlib.sha256).hexdigest()
    return f"{POSTCODE_HASH_SCHEME}:{postcode_key_fingerprint(key)}:{digest}"


def postcode_hash_prefix(stored: str) -> str:
    """``h1:<fingerprint>:`` of a stored hash ('' for an unkeyed hash of older versions, or none)."""
    scheme, _, rest = stored.partition(":")
    fingerprint, found, _digest = rest.partition(":")
    return f"{scheme}:{fingerprint}:" if scheme == POSTCODE_HASH_SCHEME and found else ""


def _component(value: str) -> str:
    return quote(value, safe="-_.~")


@dataclass(frozen=True)
class Keys:
    """Key and channel names under one prefix."""

    prefix: str = "parcelstream"

    def parcel(self, tracking_number: str) -> str:
        return f"{self.prefix}:parcel:{tracking_number}"

    def status_index(self, status: str) -> str:
        return f"{self.prefix}:status:{_component(status)}"

    def carrier_index(self, carrier: str) -> str:
        return f"{self.prefix}:carrier:{_component(carrier)}"

    def route_index(self, route: str) -> str:
        return f"{self.prefix}:route:{_component(route)}"

    def sla_index(self, flag: str) -> str:
        return f"{self.prefix}:sla:{_component(flag)}"

    def channel(self, tracking_number: str) -> str:
        return f"{self.prefix}:updates:{tracking_number}"

    def backlog(self, stage: str) -> str:
        return f"{self.prefix}:backlog:{_component(stage)}"

    def backlog_route(self, stage: str, route: str) -> str:
        return f"{self.prefix}:backlog:{_component(stage)}:{_component(route)}"

    def backlog_routes(self, stage: str) -> str:
        return f"{self.prefix}:backlog-routes:{_component(stage)}"


def _dumps(value: Any) -> str:
    # Sorted keys, no spaces: the same state always gives the same bytes (replays compare equal).
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class ProjectedParcel:
    """A ParcelState as stored: the hash fields plus what the indexes need."""

    tracking_number: str
    version: int
    fields: dict[str, str]

    @property
    def status(self) -> str:
        return self.fields["status"]

    @property
    def score(self) -> int:
        return int(self.fields["last_event_time_ms"])


def project(state: Mapping[str, Any], postcode_key: bytes = b"") -> ProjectedParcel:
    """Validate a decoded ParcelState and turn it into the stored hash fields (the postcode as its
    keyed hash; no key: no hash)."""
    tracking_number = normalize_tracking_number(str(state["tracking_number"]))
    status = state["status"]
    if status not in STATUSES:
        raise InvalidRecordError(
            "unknown_status", f"parcel {tracking_number}: status {status!r} is not one of {STATUSES}"
        )
    history = sorted(state["history"], key=lambda entry: (entry["event_time_ms"], entry["event_id"]))
    postcode = state.get("destination_postcode")
    fields = {
        "tracking_number": tracking_number,
        "version": str(int(state["version"])),
        "status": status,
        "sub_status": state["sub_status"],
        "last_event_id": state["last_event_id"],
        "last_event_time_ms": str(int(state["last_event_time_ms"])),
        "last_location": _dumps(state.get("last_location")),
        "estimated_delivery": _dumps(state.get("estimated_delivery")),
        # A state alone does not say how its window moved: plan_write compares it with the stored one.
        "estimate_moved": "",
        "on_time": "1" if state.get("on_time", True) else "0",
        "open_sla": _dumps(sorted(set(state.get("open_sla") or []))),
        "service_level": state.get("service_level") or "",
        "carrier": state.get("carrier") or "",
        "route": state.get("route") or "",
        "merchant": state.get("merchant") or "",
        "postcode_hash": postcode_hash(postcode_key, tracking_number, postcode) if postcode else "",
        **_stage_fields(state),
        "history": _dumps(history),
    }
    return ProjectedParcel(tracking_number, int(state["version"]), fields)


def _stage_fields(state: Mapping[str, Any]) -> dict[str, str]:
    """The hub stage and since when; empty when in none (or a stage this code does not know)."""
    stage, entered_ms = state.get("stage"), state.get("stage_entered_ms")
    if stage not in STAGES or entered_ms is None:
        return {"stage": "", "stage_entered_ms": ""}
    return {"stage": stage, "stage_entered_ms": str(int(entered_ms))}


@dataclass(frozen=True)
class StoredIndexEntry:
    """What Redis holds about a parcel that decides the next write: its version and index memberships."""

    version: int
    status: str
    carrier: str
    route: str
    open_sla: tuple[str, ...]
    stage: str = ""
    postcode_hash: str = ""
    estimated_delivery: str = ""  # as stored: JSON, "null" or ""
    estimate_moved: str = ""  # the latest move of the window (``estimate_move``), JSON or ""

    #: Hash fields to read (HMGET) to build this, in order.
    FIELDS: ClassVar[tuple[str, ...]] = (
        "version",
        "status",
        "carrier",
        "route",
        "open_sla",
        "stage",
        "postcode_hash",
        "estimated_delivery",
        "estimate_moved",
    )

    @classmethod
    def from_values(cls, values: Iterable[bytes | str | None]) -> StoredIndexEntry | None:
        """From HMGET of ``FIELDS``; None when the parcel is not stored."""
        decoded = [v.decode() if isinstance(v, bytes) else v for v in values]
        version, status, carrier, route, open_sla, stage, stored_hash, estimate, moved = decoded
        if version is None:
            return None
        return cls(
            int(version),
            status or "",
            carrier or "",
            route or "",
            tuple(json.loads(open_sla or "[]")),
            stage or "",
            stored_hash or "",
            estimate or "",
            moved or "",
        )


@dataclass
class WritePlan:
    """Redis commands for one parcel change, applied inside one MULTI/EXEC per batch."""

    hash_key: str
    hash_fields: dict[str, str] = field(default_factory=dict)
    delete_hash: bool = False
    index_removals: list[tuple[str, str]] = field(default_factory=list)  # (sorted-set key, member)
    index_additions: list[tuple[str, str, int]] = field(default_factory=list)  # (key, member, score)
    publish: tuple[str, str] | None = None  # (channel, message)


def _index_memberships(keys: Keys, status: str, carrier: str, route: str, open_sla: Iterable[str]) -> set[str]:
    memberships = {keys.status_index(status)}
    if carrier:
        memberships.add(keys.carrier_index(carrier))
    if route:
        memberships.add(keys.route_index(route))
    memberships.update(keys.sla_index(flag) for flag in open_sla)
    return memberships


# -- when the estimated window moved -----------------------------------------------------------------

#: Default of PARCELSTREAM_ESTIMATE_MOVE_THRESHOLD_HOURS: a window whose start or end shifts by more
#: than this is a move customers are told about (smaller shifts are the estimate's normal drift).
DEFAULT_ESTIMATE_MOVE_THRESHOLD_HOURS: Final = 12.0
HOUR_MS: Final = 3_600_000


def _window_of(estimate: Any) -> dict[str, int] | None:
    """(earliest, latest) of an ``estimated_delivery``, None when there is none."""
    if not isinstance(estimate, Mapping):
        return None
    earliest, latest = estimate.get("earliest_ms"), estimate.get("latest_ms")
    if not isinstance(earliest, int) or not isinstance(latest, int):
        return None
    return {"earliest_ms": earliest, "latest_ms": latest}


def estimate_move(stored_estimate: str, new_fields: Mapping[str, str], threshold_ms: int) -> dict[str, Any] | None:
    """The move of the estimated window from ``stored_estimate`` (the stored JSON) to the new
    state's, when its start or its end shifts by more than ``threshold_ms``; None otherwise, and
    when either side has no estimate (no window before, or none any more: nothing moved that a
    customer saw). The move records when (the new state's last event time, with that scan's UTC
    offset), the window before and after, whether it moved later or earlier (by its midpoint), and
    the step that moved it (status, sub-status, code, place of the state's last event)."""
    before = _window_of(json.loads(stored_estimate or "null"))
    after = _window_of(json.loads(new_fields["estimated_delivery"] or "null"))
    if before is None or after is None:
        return None
    start_shift = after["earliest_ms"] - before["earliest_ms"]
    end_shift = after["latest_ms"] - before["latest_ms"]
    if max(abs(start_shift), abs(end_shift)) <= threshold_ms:
        return None
    history = json.loads(new_fields["history"] or "[]")
    step = next((e for e in reversed(history) if e.get("event_id") == new_fields["last_event_id"]), None)
    step = step or (history[-1] if history else {})
    return {
        "at_ms": int(new_fields["last_event_time_ms"]),
        "utc_offset_minutes": int(step.get("utc_offset_minutes") or 0),
        "from": before,
        "to": after,
        "direction": "later" if start_shift + end_shift >= 0 else "earlier",
        "status": new_fields["status"],
        "sub_status": new_fields["sub_status"],
        "code": step.get("code"),
        "location": step.get("location"),
    }


def plan_write(
    keys: Keys,
    new: ProjectedParcel,
    stored: StoredIndexEntry | None,
    move_threshold_ms: int = int(DEFAULT_ESTIMATE_MOVE_THRESHOLD_HOURS * HOUR_MS),
) -> WritePlan | None:
    """The writes that move the parcel from ``stored`` to ``new``; None when ``new`` is not newer.

    The latest move of the estimated window (``estimate_move``, by more than ``move_threshold_ms``)
    is kept in the parcel's hash (field ``estimate_moved``; a newer move replaces it, so it stays one
    entry and goes with the hash). Only newer versions are compared, so a replay moves nothing.

    An older or replayed state still rewrites a postcode hash made with another key (or unkeyed, by
    older versions): replaying ``parcel-state`` migrates the read model to the current key."""
    if stored is not None and stored.version >= new.version:
        wanted = new.fields["postcode_hash"]
        if wanted and postcode_hash_prefix(stored.postcode_hash) != postcode_hash_prefix(wanted):
            return WritePlan(hash_key=keys.parcel(new.tracking_number), hash_fields={"postcode_hash": wanted})
        return None
    fields = dict(new.fields)
    if stored is not None:
        move = estimate_move(stored.estimated_delivery, fields, move_threshold_ms)
        fields["estimate_moved"] = _dumps(move) if move is not None else stored.estimate_moved
    wanted = _index_memberships(
        keys, fields["status"], fields["carrier"], fields["route"], json.loads(fields["open_sla"])
    )
    held = (
        _index_memberships(keys, stored.status, stored.carrier, stored.route, stored.open_sla)
        if stored is not None
        else set()
    )
    tn = new.tracking_number
    backlog_removals, backlog_additions = plan_backlog(
        keys,
        tn,
        (stored.stage, stored.route) if stored is not None else None,
        (fields["stage"], fields["route"], int(fields["stage_entered_ms"])) if fields["stage"] else None,
    )
    return WritePlan(
        hash_key=keys.parcel(tn),
        hash_fields=fields,
        index_removals=[(key, tn) for key in sorted(held - wanted)] + backlog_removals,
        # Re-adding kept memberships refreshes their score (the last event time).
        index_additions=[(key, tn, new.score) for key in sorted(wanted)] + backlog_additions,
        publish=(keys.channel(tn), _dumps(public_view(fields))),
    )


def plan_delete(keys: Keys, tracking_number: str, stored: StoredIndexEntry | None) -> WritePlan | None:
    """A tombstone on the compacted topic: the parcel leaves the read model and every index."""
    if stored is None:
        return None
    held = _index_memberships(keys, stored.status, stored.carrier, stored.route, stored.open_sla)
    return WritePlan(
        hash_key=keys.parcel(tracking_number),
        delete_hash=True,
        index_removals=[(key, tracking_number) for key in sorted(held)]
        + backlog_removals(keys, tracking_number, stored.stage, stored.route),
    )


# -- the backlog per hub stage ---------------------------------------------------------------------


def _backlog_keys(keys: Keys, stage: str, route: str) -> tuple[str, str]:
    return keys.backlog(stage), keys.backlog_route(stage, route or "unknown")


def backlog_removals(keys: Keys, tracking_number: str, stage: str, route: str) -> list[tuple[str, str]]:
    """(sorted-set key, member) that take a parcel out of the backlog of ``stage`` on ``route`` (its
    stored ``stage`` and ``route`` fields); empty when it is in no stage. Whatever removes a parcel
    from the read model removes these too (``plan_delete`` does)."""
    if stage not in STAGES:
        return []
    return [(key, tracking_number) for key in _backlog_keys(keys, stage, route)]


def plan_backlog(
    keys: Keys, tracking_number: str, held: tuple[str, str] | None, wanted: tuple[str, str, int] | None
) -> tuple[list[tuple[str, str]], list[tuple[str, str, int]]]:
    """Removals and additions that move a parcel from the backlog it is in, ``held`` = (stage, route)
    stored, to ``wanted`` = (stage, route, entered_ms); either None when in no stage. A parcel that
    stays is added again: its score follows its stage entry time (a late scan may move it)."""
    removals = backlog_removals(keys, tracking_number, *held) if held is not None else []
    if wanted is None:
        return removals, []
    stage, route, entered_ms = wanted
    wanted_keys = _backlog_keys(keys, stage, route)
    additions = [(key, tracking_number, entered_ms) for key in wanted_keys]
    additions.append((keys.backlog_routes(stage), route or "unknown", 0))
    return [removal for removal in removals if removal[0] not in wanted_keys], additions


def latest_per_parcel(states: Iterable[ProjectedParcel]) -> dict[str, ProjectedParcel]:
    """Keep the highest version per parcel of a batch (the first of equal versions: later copies are replays)."""
    latest: dict[str, ProjectedParcel] = {}
    for state in states:
        current = latest.get(state.tracking_number)
        if current is None or state.version > current.version:
            latest[state.tracking_number] = state
    return latest


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


def delay_reasons(open_sla: Iterable[str]) -> list[str]:
    """The SLA rules a parcel has breached (names of ``schemas/sla.py``), which customers are told as
    why it runs late; at-risk flags stay internal."""
    return sorted({flag.split(":", 1)[0] for flag in open_sla if flag.endswith(":breach")})


def public_view(fields: Mapping[str, bytes | str | None]) -> dict[str, Any]:
    """What a customer may see of a stored parcel: no postcode hash, merchant or route, and of the SLA
    flags only the names of breached rules (``delay_reasons``)."""
    history = json.loads(_text(fields.get("history")) or "[]")
    return {
        "tracking_number": _text(fields.get("tracking_number")),
        "version": int(_text(fields.get("version")) or 0),
        "status": _text(fields.get("status")),
        "sub_status": _text(fields.get("sub_status")),
        "last_event_time_ms": int(_text(fields.get("last_event_time_ms")) or 0),
        "last_location": json.loads(_text(fields.get("last_location")) or "null"),
        "estimated_delivery": json.loads(_text(fields.get("estimated_delivery")) or "null"),
        "estimate_moved": json.loads(_text(fields.get("estimate_moved")) or "null"),
        "on_time": _text(fields.get("on_time")) != "0",
        "delay_reasons": delay_reasons(json.loads(_text(fields.get("open_sla")) or "[]")),
        "history": [
            {
                "event_time_ms": entry["event_time_ms"],
                "utc_offset_minutes": entry.get("utc_offset_minutes", 0),
                "status": entry["status"],
                "sub_status": entry["sub_status"],
                "code": entry["code"],
                "location": entry.get("location"),
                "carrier": entry["carrier"],
                "reason": entry.get("reason"),
            }
            for entry in history
        ],
    }
