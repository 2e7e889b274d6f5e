"""A hostile (or careless) carrier mixed into simulated traffic: the inputs that pass the edge's
shape checks and then try to stall, poison or hijack the pipeline.

Each hostile record carries the dead-letter reason codes the pipeline may answer it with, so a test
can check that every one of them was refused for the right reason and that the honest parcels end
exactly as in the same run without them. Hostile records never change the simulation's ground
truth: they target honest parcels (a forged order, a scan from the far future, a delivery by a
carrier the parcel was not handed to) or units of their own (a bag inside itself, two bags inside
each other).

Kinds (round-robin, so every kind appears once the count reaches their number):

- ``unit_self``: a manifest putting a bag inside itself → ``unit_cycle``.
- ``unit_pair``: bag A inside bag B, bag B inside bag A, then a scan of A. Each manifest alone is
  harmless (the two units may live on different partitions, so no worker sees both); the scan's
  copy that comes back to A is refused (``unit_cycle``, or ``fanout_too_deep`` past the hop limit).
- ``far_future``: a DELIVERED scan dated 2100 for an honest parcel → ``event_time_out_of_range``.
- ``year_10000``: a scan dated after year 9999 (no calendar can show it) → ``event_time_out_of_range``.
- ``ancient_order``: an ORDER_CREATED dated 1971 naming another merchant and postcode →
  ``event_time_out_of_range``.
- ``forged_order``: an ORDER_CREATED an hour before the real one, naming another merchant and
  postcode → ``shipment_conflict``.
- ``wrong_carrier``: a DELIVERED scan from another last-mile carrier after the parcel's own carrier
  has received it → ``carrier_not_assigned``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any, Final

from producers.simulator.model import HOUR, LAST_MILE_CARRIERS, MINUTE, Simulation, TimedRecord

#: UTC epoch ms of 2100-01-01 and of 10000-01-01 (past every calendar's year 9999).
YEAR_2100_MS: Final = 4_102_444_800_000
YEAR_10000_MS: Final = 253_402_300_800_000
#: UTC epoch ms of 1971-01-01.
YEAR_1971_MS: Final = 31_536_000_000

KINDS: Final = ("unit_self", "unit_pair", "far_future", "year_10000", "ancient_order", "forged_order", "wrong_carrier")
EXPECTED_REASONS: Final[dict[str, frozenset[str]]] = {
    "unit_self": frozenset({"unit_cycle"}),
    "unit_pair": frozenset({"unit_cycle", "fanout_too_deep"}),
    "far_future": frozenset({"event_time_out_of_range"}),
    "year_10000": frozenset({"event_time_out_of_range"}),
    "ancient_order": frozenset({"event_time_out_of_range"}),
    "forged_order": frozenset({"shipment_conflict"}),
    "wrong_carrier": frozenset({"carrier_not_assigned"}),
}
HOSTILE_CARRIER: Final = "HOSTILE"
HOSTILE_MERCHANT: Final = "hostile-merchant"


@dataclass(frozen=True)
class HostileRecord:
    """One hostile record, its kind, and whether the pipeline must dead-letter it.

    ``refused`` is False for the records that are harmless alone (the manifests of a pair of units
    inside each other); the kind's other records carry the refusal.
    """

    record: TimedRecord
    kind: str
    refused: bool = True

    @property
    def reasons(self) -> frozenset[str]:
        return EXPECTED_REASONS[self.kind]


def _event_id(rng: random.Random) -> str:
    return f"hostile-{rng.getrandbits(64):016x}"


def _scan(
    base: dict[str, Any], rng: random.Random, *, code: str, raw_code: str, at_ms: int, carrier: str, **fields: Any
) -> dict[str, Any]:
    return (
        base
        | {
            "event_id": _event_id(rng),
            "code": code,
            "raw_code": raw_code,
            "carrier": carrier,
            "event_time_ms": at_ms,
            "reason": None,
            "shipment": None,
        }
        | fields
    )


def _manifest(rng: random.Random, unit: str, members: list[str], at_ms: int) -> dict[str, Any]:
    return {
        "manifest_id": _event_id(rng),
        "handling_unit": unit,
        "unit_type": "bag",
        "action": "add",
        "members": members,
        "member_type": "bag",
        "carrier": HOSTILE_CARRIER,
        "source": "warehouse",
        "event_time_ms": at_ms,
        "recorded_time_ms": at_ms,
        "references": {
            "awb": None,
            "uld": None,
            "bag": None,
            "container": None,
            "flight_number": None,
            "train_id": None,
        },
    }


class _Planner:
    def __init__(self, simulation: Simulation, rng: random.Random) -> None:
        self.rng = rng
        self.simulation = simulation
        self.scans_by_parcel: dict[str, list[TimedRecord]] = {}
        for record in simulation.records:
            tn = record.value.get("tracking_number") if record.kind == "scan" else None
            if tn:
                self.scans_by_parcel.setdefault(tn, []).append(record)
        self.parcels = sorted(self.scans_by_parcel)
        self.serial = 0

    def unit_id(self) -> str:
        self.serial += 1
        return f"BAGHX{self.rng.getrandbits(32):010d}{self.serial:04d}"

    def parcel_scans(self) -> list[TimedRecord]:
        """The scans of a random honest parcel."""
        return self.scans_by_parcel[self.rng.choice(self.parcels)]

    def plan(self, kind: str) -> list[HostileRecord]:
        rng, start = self.rng, self.simulation.start_ms
        if kind == "unit_self":
            unit = self.unit_id()
            at = start + rng.randint(0, 12 * HOUR)
            return [HostileRecord(TimedRecord(at, "manifest", _manifest(rng, unit, [unit], at), hostile=kind), kind)]
        if kind == "unit_pair":
            first, second = self.unit_id(), self.unit_id()
            at = start + rng.randint(0, 12 * HOUR)
            scans = self.parcel_scans()
            template = scans[0].value
            unit_scan = _scan(
                template,
                rng,
                code="HUB_SORTED",
                raw_code="sorting",
                at_ms=at + 2 * MINUTE,
                carrier=HOSTILE_CARRIER,
                tracking_number=None,
                handling_unit=first,
                recorded_time_ms=at + 2 * MINUTE,
            )
            outer = _manifest(rng, first, [second], at)
            inner = _manifest(rng, second, [first], at + MINUTE)
            return [
                HostileRecord(TimedRecord(at, "manifest", outer, hostile=kind), kind, refused=False),
                HostileRecord(TimedRecord(at + MINUTE, "manifest", inner, hostile=kind), kind, refused=False),
                HostileRecord(TimedRecord(at + 2 * MINUTE, "scan", unit_scan, hostile=kind), kind),
            ]
        scans = self.parcel_scans()
        order = next((r for r in scans if r.value["code"] == "ORDER_CREATED"), scans[0])
        middle = scans[len(scans) // 2]
        if kind in ("far_future", "year_10000"):
            at = YEAR_2100_MS if kind == "far_future" else YEAR_10000_MS
            value = _scan(
                middle.value,
                rng,
                code="DELIVERED",
                raw_code="DELIVERED",
                at_ms=at + rng.randint(0, HOUR),
                carrier=HOSTILE_CARRIER,
                recorded_time_ms=middle.publish_at_ms + MINUTE,
            )
            return [HostileRecord(TimedRecord(middle.publish_at_ms + MINUTE, "scan", value, hostile=kind), kind)]
        if kind in ("ancient_order", "forged_order"):
            shipment = dict(order.value.get("shipment") or {})
            at = YEAR_1971_MS if kind == "ancient_order" else order.value["event_time_ms"] - HOUR
            postcode = "0000" if shipment.get("destination_postcode") != "0000" else "9999"
            shipment |= {"merchant": HOSTILE_MERCHANT, "destination_postcode": postcode, "ordered_time_ms": at}
            value = _scan(
                order.value,
                rng,
                code="ORDER_CREATED",
                raw_code=order.value["raw_code"],
                at_ms=at,
                carrier=order.value["carrier"],
                shipment=shipment,
                recorded_time_ms=middle.publish_at_ms + MINUTE,
            )
            return [HostileRecord(TimedRecord(middle.publish_at_ms + MINUTE, "scan", value, hostile=kind), kind)]
        if kind == "wrong_carrier":
            received = [r for r in scans if r.value["code"] == "LASTMILE_RECEIVED" and r.value["source"] == "lastmile"]
            if not received:
                return self.plan("far_future" if self.serial % 2 else "forged_order")
            own = received[0]
            others = [c for c in LAST_MILE_CARRIERS if c != own.value["carrier"]]
            value = _scan(
                own.value,
                rng,
                code="DELIVERED",
                raw_code="DELIVERED",
                at_ms=own.value["event_time_ms"] + MINUTE,
                carrier=rng.choice(others),
                recorded_time_ms=own.publish_at_ms + 5 * MINUTE,
            )
            return [HostileRecord(TimedRecord(own.publish_at_ms + 5 * MINUTE, "scan", value, hostile=kind), kind)]
        raise ValueError(f"unknown hostile kind {kind!r}")


def hostile_records(simulation: Simulation, rate: float, seed: int = 0) -> list[HostileRecord]:
    """About ``rate`` hostile records per honest record (at least one of each kind when rate > 0 and
    there are parcels), in publish order."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"hostile rate must be between 0 and 1, got {rate}")
    if rate == 0 or not simulation.truth:
        return []
    planner = _Planner(simulation, random.Random(f"hostile-{simulation.config.seed}-{seed}"))
    count = max(len(KINDS), round(rate * len(simulation.records)))
    planned: list[HostileRecord] = []
    for index in range(count):
        planned.extend(planner.plan(KINDS[index % len(KINDS)]))
    planned.sort(key=lambda hostile: hostile.record.publish_at_ms)
    return planned


def with_hostile(simulation: Simulation, rate: float, seed: int = 0) -> tuple[Simulation, list[HostileRecord]]:
    """The simulation with hostile records merged into its publish order (ground truth unchanged)."""
    hostile = hostile_records(simulation, rate, seed)
    if not hostile:
        return simulation, []
    records = sorted(
        [*simulation.records, *(h.record for h in hostile)],
        key=lambda record: record.publish_at_ms,
    )
    return replace(simulation, records=records), hostile
