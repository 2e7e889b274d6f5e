"""Handling units (bags, ULDs, containers): their membership and the fan-out of their scans.

A unit scan is copied to every member of the unit; the copy keeps the scan's ``event_id`` (so a
parcel that gets the same scan by two paths applies it once) and names the unit in its
``references`` (the ``bag``, ``uld`` or ``container`` field, after the unit's type). A parcel
member gets ``tracking_number`` = member and ``handling_unit`` = None; a bag/ULD/container member
gets ``handling_unit`` = member and ``tracking_number`` = None. Nesting (ULD → bags → parcels)
works one level per call: the worker sends unit-addressed copies back through ``scans-fanout``.

Membership is decided per member by its latest manifest in event time (ties by manifest id):
``add`` makes it a member, ``remove`` ends it. Manifests are often uploaded after the unit has
been scanned, so the unit keeps its scans: a member that joins receives every kept scan, whatever
their times. A removed member receives no later-arriving scan, except one stamped before its
removal (it was in the unit then). Duplicate manifest ids and scan ids fan out nothing new.

Bounds: a unit keeps its latest ``MAX_KEPT_SCANS`` scans in event time (a bag or ULD sees a few
dozen in its life); older ones are evicted and counted in ``evicted_scans`` (a member joining
after that misses them, and a re-sent evicted scan fans out again: parcels drop it as a
duplicate). It remembers the last ``MAX_MANIFEST_IDS`` manifest ids; re-applying a forgotten one
changes nothing, since membership is decided by event time. Members (current and removed) are at
most ``max_members`` (``PARCELSTREAM_MAX_UNIT_MEMBERS``, default ``MAX_UNIT_MEMBERS``): a manifest
that would pass it is refused whole (``unit_too_large``) and changes nothing.

Cycles and depth: a unit scan that reached this unit through other units carries their ids,
outermost first, in ``FANOUT_PATH`` (the worker keeps it in a Kafka record header of
``scans-fanout``, not in the ScanEvent schema); each copy adds the unit that sent it. A unit
never takes itself or one of its known containers (the units on the paths of its kept scans) as a
member (``unit_cycle``); a copy that comes back to a unit already on its path is refused the same
way, so a cycle formed by manifests alone stops at the first scan that goes round it; and a copy
that would pass through more than ``max_depth`` units is refused (``fanout_too_deep``), whatever
the manifests say. Refused inputs change nothing.

Replays: the unit records, for its last ``MAX_RECORDED_INPUTS`` inputs that fanned out something,
which kept scans went to which members. The same scan or manifest again changes nothing and
returns those copies again, built from the kept scans (a scan evicted meanwhile is not re-sent), so
a worker that crashed after storing the unit but before publishing its copies can publish them;
members de-duplicate copies by event id. A repeat that arrived by fan-out re-sends its copies one
hop further along the path it came by: every copy caused by a copy is one unit deeper, so no
repeat can circle (cycle or depth refuses it within ``max_depth`` hops), while a worker that
crashed between storing a nested unit and publishing its copies still publishes them.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any, Final

from streams.core.taxonomy import InvalidScanError

MAX_KEPT_SCANS: Final = 256
#: Members a unit keeps at most (a container of parcels holds a few thousand).
MAX_UNIT_MEMBERS: Final = 10_000
MAX_MANIFEST_IDS: Final = 1024
#: Inputs whose fan-out a unit remembers for re-sending.
MAX_RECORDED_INPUTS: Final = 32
UNIT_REFERENCE_FIELDS: Final = {"bag": "bag", "uld": "uld", "container": "container"}
#: Key, in a scan dict, of the units the scan came through (outermost first); absent when none.
FANOUT_PATH: Final = "fanout_path"
#: Units a copy may pass through: container > ULD > bag > parcel is 3.
DEFAULT_MAX_FANOUT_DEPTH: Final = 3


@dataclass(slots=True)
class Membership:
    member_type: str
    added: bool
    event_time_ms: int
    manifest_id: str


def _scan_key(scan: dict[str, Any]) -> tuple[int, str]:
    return scan["event_time_ms"], scan["event_id"]


@dataclass(slots=True)
class Unit:
    handling_unit: str
    unit_type: str | None = None  # bag, uld or container; None until a manifest names it
    #: Every member the manifests mentioned, current or removed, with the deciding manifest.
    membership: dict[str, Membership] = field(default_factory=dict)
    #: Scans of this unit, in (event_time_ms, event_id) order, at most MAX_KEPT_SCANS.
    scans: list[dict[str, Any]] = field(default_factory=list)
    #: Applied manifest ids, oldest first, at most MAX_MANIFEST_IDS.
    manifest_ids: list[str] = field(default_factory=list)
    evicted_scans: int = 0
    #: Latest event time of the scans and manifests applied (its retention counts from there).
    last_seen_ms: int | None = None
    #: The last MAX_RECORDED_INPUTS inputs that fanned out, oldest first: input id ("scan:<event
    #: id>", "manifest:<manifest id>") → (kept scan ids, members): every scan went to every member.
    recorded: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)
    _scan_ids: set[str] = field(default_factory=set, repr=False, compare=False)
    _manifest_id_set: set[str] = field(default_factory=set, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._scan_ids = {scan["event_id"] for scan in self.scans}
        self._manifest_id_set = set(self.manifest_ids)

    @property
    def members(self) -> dict[str, str]:
        """Current members: member id → member type (parcel, bag, uld, container)."""
        return {member: m.member_type for member, m in self.membership.items() if m.added}

    def record(self, input_id: str, scan_ids: list[str], members: list[str]) -> None:
        """Remember that ``input_id`` sent these scans to these members, within the bound."""
        if not scan_ids or not members:
            return
        self.recorded[input_id] = (scan_ids, members)
        if len(self.recorded) > MAX_RECORDED_INPUTS:
            del self.recorded[next(iter(self.recorded))]

    def replay(self, input_id: str, via: list[str] | None = None) -> list[dict[str, Any]]:
        """The copies ``input_id`` fanned out when it was applied (none if it is not recorded);
        ``via``: the path the repeated input came by, which the copies then continue (so a repeat
        that goes round a cycle gets longer at every hop and is refused)."""
        recorded = self.recorded.get(input_id)
        if recorded is None:
            return []
        scan_ids, members = recorded
        kept = {scan["event_id"]: scan for scan in self.scans if scan["event_id"] in scan_ids}
        return [
            fan_out_copy(kept[scan_id], self, member, self.membership[member].member_type, via)
            for member in members
            for scan_id in scan_ids
            if scan_id in kept
        ]

    def containers(self) -> set[str]:
        """Units this unit is known to be inside: those on the paths of its kept scans."""
        return {unit for scan in self.scans for unit in scan.get(FANOUT_PATH) or ()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "handling_unit": self.handling_unit,
            "unit_type": self.unit_type,
            "membership": {
                member: [m.member_type, m.added, m.event_time_ms, m.manifest_id]
                for member, m in self.membership.items()
            },
            "scans": list(self.scans),
            "manifest_ids": list(self.manifest_ids),
            "evicted_scans": self.evicted_scans,
            "last_seen_ms": self.last_seen_ms,
            "recorded": [[input_id, scan_ids, members] for input_id, (scan_ids, members) in self.recorded.items()],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Unit:
        return cls(
            handling_unit=data["handling_unit"],
            unit_type=data.get("unit_type"),
            membership={member: Membership(*values) for member, values in data.get("membership", {}).items()},
            scans=list(data.get("scans", ())),
            manifest_ids=list(data.get("manifest_ids", ())),
            evicted_scans=data.get("evicted_scans", 0),
            last_seen_ms=data.get("last_seen_ms"),
            recorded={input_id: (scan_ids, members) for input_id, scan_ids, members in data.get("recorded", ())},
        )


def fan_out_copy(
    scan: dict[str, Any], unit: Unit, member: str, member_type: str, via: list[str] | None = None
) -> dict[str, Any]:
    """The unit scan addressed to one member, with the unit named in its references and appended to
    its path (``via``, or else the path the kept scan came by)."""
    copy = dict(scan)
    copy[FANOUT_PATH] = [*(fanout_path(scan) if via is None else via), unit.handling_unit]
    references = dict(scan.get("references") or {})
    reference_field = UNIT_REFERENCE_FIELDS.get(unit.unit_type or "")
    if reference_field is not None:
        references[reference_field] = unit.handling_unit
    copy["references"] = references
    if member_type == "parcel":
        copy["tracking_number"], copy["handling_unit"] = member, None
    else:
        copy["tracking_number"], copy["handling_unit"] = None, member
    return copy


def fanout_path(scan: dict[str, Any]) -> list[str]:
    """The units ``scan`` came through, outermost first (empty for a scan from a carrier)."""
    return list(scan.get(FANOUT_PATH) or ())


def check_fanout(subject: str, scan: dict[str, Any], *, is_unit: bool, max_depth: int) -> None:
    """Refuse a fan-out copy that went round a cycle back to ``subject`` or went too deep.

    A unit needs room for one more hop (its own copies); a parcel is the last step."""
    path = fanout_path(scan)
    if not path:
        return
    if subject in path:
        raise InvalidScanError(
            "unit_cycle", f"scan {scan.get('event_id')!r} came back to {subject!r} through {' > '.join(path)}"
        )
    hops = len(path) + (1 if is_unit else 0)
    if hops > max_depth:
        raise InvalidScanError(
            "fanout_too_deep",
            f"scan {scan.get('event_id')!r} reached {subject!r} through {len(path)} units ({' > '.join(path)}); "
            f"at most {max_depth} may nest",
        )


def _unit_for(
    unit: Unit | None, handling_unit: str | None, what: str, event_time_ms: int, retention_ms: int | None
) -> Unit:
    if not handling_unit:
        raise InvalidScanError("missing_handling_unit", f"{what} has no handling_unit")
    if unit is not None and unit.handling_unit != handling_unit:
        raise InvalidScanError("wrong_unit", f"{what} for {handling_unit!r} applied to unit {unit.handling_unit!r}")
    if unit is None or unit_expired(unit, retention_ms, event_time_ms):
        unit = Unit(handling_unit)  # a reused id (ULDs fly daily) starts a fresh membership
    return unit


def _seen(unit: Unit, event_time_ms: int) -> None:
    unit.last_seen_ms = event_time_ms if unit.last_seen_ms is None else max(unit.last_seen_ms, event_time_ms)


def unit_expired(unit: Unit, retention_ms: int | None, now_ms: int) -> bool:
    """Whether the unit was last seen ``retention_ms`` or more before ``now_ms`` (event time)."""
    return retention_ms is not None and unit.last_seen_ms is not None and now_ms >= unit.last_seen_ms + retention_ms


def unit_due_ms(unit: Unit, retention_ms: int) -> int | None:
    """When the unit is forgotten (the worker deletes it), with no further scan or manifest."""
    return None if unit.last_seen_ms is None else unit.last_seen_ms + retention_ms


def apply_manifest(
    unit: Unit | None,
    manifest: dict[str, Any],
    max_members: int = MAX_UNIT_MEMBERS,
    retention_ms: int | None = None,
) -> tuple[Unit, list[dict[str, Any]]]:
    """Apply a Manifest dict; returns the unit (mutated, or new) and the scans to fan out: every
    kept scan for each member the manifest added. Raises ``InvalidScanError`` (``unit_too_large``)
    and changes nothing when the unit would have more than ``max_members`` members. A unit last
    seen ``retention_ms`` before the manifest starts again empty (the id was reused)."""
    what = f"manifest {manifest.get('manifest_id')!r}"
    unit = _unit_for(unit, manifest.get("handling_unit"), what, manifest["event_time_ms"], retention_ms)
    manifest_id: str = manifest["manifest_id"]
    if manifest_id in unit._manifest_id_set:
        return unit, unit.replay(f"manifest:{manifest_id}")
    if manifest["action"] == "add" and manifest["member_type"] != "parcel":
        containers = unit.containers() | {unit.handling_unit}
        looping = [member for member in manifest["members"] if member in containers]
        if looping:
            raise InvalidScanError(
                "unit_cycle",
                f"manifest {manifest_id!r} puts {', '.join(map(repr, looping))} inside {unit.handling_unit!r}, "
                "which is (inside) it",
            )
    new_members = len(set(manifest["members"]) - unit.membership.keys())
    if len(unit.membership) + new_members > max_members:
        raise InvalidScanError(
            "unit_too_large",
            f"unit {unit.handling_unit!r} would have {len(unit.membership) + new_members} members, "
            f"more than the {max_members} one unit keeps",
        )
    _seen(unit, manifest["event_time_ms"])
    unit.manifest_ids.append(manifest_id)
    unit._manifest_id_set.add(manifest_id)
    if len(unit.manifest_ids) > MAX_MANIFEST_IDS:
        unit._manifest_id_set.discard(unit.manifest_ids.pop(0))
    unit.unit_type = manifest["unit_type"]

    added = manifest["action"] == "add"
    decision = (manifest["event_time_ms"], manifest_id)
    fan_out: list[dict[str, Any]] = []
    joined: list[str] = []
    for member in manifest["members"]:
        current = unit.membership.get(member)
        if current is not None and (current.event_time_ms, current.manifest_id) >= decision:
            continue  # a later manifest already decided this member
        unit.membership[member] = Membership(manifest["member_type"], added, decision[0], manifest_id)
        if added and (current is None or not current.added):
            joined.append(member)
            fan_out.extend(fan_out_copy(scan, unit, member, manifest["member_type"]) for scan in unit.scans)
    unit.record(f"manifest:{manifest_id}", [scan["event_id"] for scan in unit.scans], joined)
    return unit, fan_out


def apply_unit_scan(
    unit: Unit | None,
    scan: dict[str, Any],
    max_depth: int = DEFAULT_MAX_FANOUT_DEPTH,
    retention_ms: int | None = None,
) -> tuple[Unit, list[dict[str, Any]]]:
    """Apply a ScanEvent dict addressed to a unit; returns the unit and the copies for its members.
    A unit last seen ``retention_ms`` before the scan starts again empty (the id was reused).

    Raises ``InvalidScanError`` (``unit_cycle``, ``fanout_too_deep``, ...) and then changes nothing."""
    unit = _unit_for(
        unit, scan.get("handling_unit"), f"scan {scan.get('event_id')!r}", scan["event_time_ms"], retention_ms
    )
    check_fanout(unit.handling_unit, scan, is_unit=True, max_depth=max_depth)
    if scan["event_id"] in unit._scan_ids:
        return unit, unit.replay(f"scan:{scan['event_id']}", fanout_path(scan))
    _seen(unit, scan["event_time_ms"])
    index = bisect_right(unit.scans, _scan_key(scan), key=_scan_key)
    unit.scans.insert(index, scan)
    unit._scan_ids.add(scan["event_id"])
    if len(unit.scans) > MAX_KEPT_SCANS:
        evicted = unit.scans.pop(0)
        unit._scan_ids.discard(evicted["event_id"])
        unit.evicted_scans += 1
    event_time = scan["event_time_ms"]
    recipients = [
        (member, m.member_type) for member, m in unit.membership.items() if m.added or m.event_time_ms >= event_time
    ]
    unit.record(f"scan:{scan['event_id']}", [scan["event_id"]], [member for member, _type in recipients])
    return unit, [fan_out_copy(scan, unit, member, member_type) for member, member_type in recipients]
