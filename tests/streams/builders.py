"""Builders of ScanEvent / Manifest dicts and an in-memory pipeline of the pure core (the worker's
routing without Kafka), shared by the streams unit and property tests."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from schemas.erasure import erased_key
from streams.core.apply import apply_due, apply_erasure, apply_scan
from streams.core.clock import EventClock
from streams.core.consolidation import Unit, apply_manifest, apply_unit_scan
from streams.core.parcel import JSON_ENTRIES, EntryCodec, Parcel
from streams.core.rules import Retention, SlaRules

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
HOUR = 3_600_000
DAY = 24 * HOUR
TN = "LP00123456789CN"
NO_REFERENCES: dict[str, Any] = dict.fromkeys(("awb", "uld", "bag", "container", "flight_number", "train_id"))


def location(code: str, kind: str = "airport", country: str | None = None) -> dict[str, Any]:
    return {"code": code, "kind": kind, "country": country, "name": None}


def shipment(service_level: str = "standard", ordered_ms: int = T0, merchant: str | None = "shop-1") -> dict[str, Any]:
    return {
        "service_level": service_level,
        "flow": "import",
        "origin_country": "CN",
        "destination_country": "BE",
        "destination_postcode": "4000",
        "merchant": merchant,
        "ordered_time_ms": ordered_ms,
    }


def scan(
    code: str,
    time_ms: int,
    event_id: str | None = None,
    *,
    tracking_number: str | None = TN,
    handling_unit: str | None = None,
    where: dict[str, Any] | None = None,
    with_shipment: dict[str, Any] | None = None,
    carrier: str = "CK",
    source: str = "warehouse",
) -> dict[str, Any]:
    """A ScanEvent dict valid against schemas/avro/scan_event.v1.avsc."""
    subject = tracking_number or handling_unit
    return {
        "event_id": event_id or f"{subject}-{code}-{time_ms}",
        "tracking_number": tracking_number,
        "handling_unit": handling_unit,
        "source": source,
        "code": code,
        "raw_code": code.lower(),
        "raw_format": "simulator",
        "carrier": carrier,
        "event_time_ms": time_ms,
        "utc_offset_minutes": 60,
        "recorded_time_ms": time_ms + 1000,
        "location": where,
        "references": dict(NO_REFERENCES),
        "reason": None,
        "shipment": with_shipment,
    }


def manifest(
    manifest_id: str,
    handling_unit: str,
    members: list[str],
    *,
    unit_type: str = "bag",
    member_type: str = "parcel",
    action: str = "add",
    time_ms: int = T0,
) -> dict[str, Any]:
    """A Manifest dict valid against schemas/avro/manifest.v1.avsc."""
    return {
        "manifest_id": manifest_id,
        "handling_unit": handling_unit,
        "unit_type": unit_type,
        "action": action,
        "members": members,
        "member_type": member_type,
        "carrier": "CK",
        "source": "warehouse",
        "event_time_ms": time_ms,
        "recorded_time_ms": time_ms,
        "references": dict(NO_REFERENCES),
    }


@dataclass
class Pipeline:
    """The worker's routing in memory: unit scans and manifests go through consolidation, whose
    fan-out is processed next (as through ``scans-fanout``); parcel scans go to ``apply_scan`` with
    the event clock's now (wall time fixed, so now = the latest event time seen). Outputs first
    produced go to ``status_updates`` / ``sla_events`` and to the ``outbox`` (the worker's record
    of its last batch, emptied by ``flush``: the broker acknowledged them); those a restarted
    worker publishes again from the outbox go to ``resent_updates`` / ``resent_sla_events``."""

    rules: SlaRules = field(default_factory=SlaRules)
    parcels: dict[str, Parcel] = field(default_factory=dict)
    units: dict[str, Unit] = field(default_factory=dict)
    status_updates: list[dict[str, Any]] = field(default_factory=list)
    sla_events: list[dict[str, Any]] = field(default_factory=list)
    resent_updates: list[dict[str, Any]] = field(default_factory=list)
    resent_sla_events: list[dict[str, Any]] = field(default_factory=list)
    clock: EventClock = field(default_factory=lambda: EventClock(speed=1.0))
    outbox: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: How parcels encode their history entries (the worker's: ``streams.worker.serde.AvroEntryCodec``).
    codec: EntryCodec = JSON_ENTRIES
    retention: Retention = field(default_factory=Retention)
    #: Markers of erased parcels (``erased_key``): their scans are refused, as the worker does.
    erased: set[str] = field(default_factory=set)
    #: Scans refused (reason code, event id): archived or erased parcels.
    refused: list[tuple[str, str]] = field(default_factory=list)

    def feed(self, kind: str, value: dict[str, Any]) -> None:
        queue: deque[tuple[str, dict[str, Any]]] = deque([(kind, value)])
        while queue:
            kind, value = queue.popleft()
            if kind == "manifest":
                unit, fan_out = apply_manifest(self.units.get(value["handling_unit"]), value)
                self.units[unit.handling_unit] = unit
                queue.extend(("scan", copy) for copy in fan_out)
            elif value.get("tracking_number") and erased_key(value["tracking_number"]) in self.erased:
                self.refused.append(("parcel_erased", value["event_id"]))
            elif value.get("tracking_number"):
                self.clock.observe(value["event_time_ms"], 0)
                parcel = self.parcels.get(value["tracking_number"])
                if parcel is not None and parcel.archived_at_ms is not None:
                    self.refused.append(("parcel_archived", value["event_id"]))
                    continue
                outcome = apply_scan(
                    self.parcels.get(value["tracking_number"]),
                    value,
                    self.rules,
                    self.clock.now_ms(0),
                    codec=self.codec,
                )
                self.parcels[outcome.parcel.tracking_number] = outcome.parcel
                self.status_updates.extend(outcome.status_updates)
                self.sla_events.extend(outcome.sla_events)
                self.outbox.extend(("update", update) for update in outcome.status_updates)
                self.outbox.extend(("sla", event) for event in outcome.sla_events)
            else:
                unit, fan_out = apply_unit_scan(self.units.get(value["handling_unit"]), value)
                self.units[unit.handling_unit] = unit
                queue.extend(("scan", copy) for copy in fan_out)

    def published(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(status updates, SLA events) as published: first emissions and re-sends."""
        return self.status_updates + self.resent_updates, self.sla_events + self.resent_sla_events

    def expire(self, now_ms: int) -> None:
        """The worker's timer at event time ``now_ms`` for every parcel: expiry, archiving, marker end."""
        for number, parcel in list(self.parcels.items()):
            outcome = apply_due(parcel, self.rules, self.retention, now_ms)
            if outcome.gone:
                del self.parcels[number]
            else:
                self.parcels[number] = outcome.parcel
                self.status_updates.extend(outcome.status_updates)
                self.sla_events.extend(outcome.sla_events)

    def erase(self, tracking_number: str) -> None:
        """A ParcelCommand ``erase``: the parcel goes, a marker under a hash refuses its scans."""
        apply_erasure(self.parcels.pop(tracking_number, None), tracking_number)
        self.erased.add(erased_key(tracking_number))

    def flush(self) -> None:
        """The outputs so far reached the broker: the next batch's outbox replaces the record."""
        self.outbox.clear()

    def restored(self) -> Pipeline:
        """A new pipeline on this one's stored state (the tables after a restart), with a new clock;
        it publishes the outbox again, as the worker does after an assignment."""
        restarted = Pipeline(
            rules=self.rules,
            codec=self.codec,
            retention=self.retention,
            erased=set(self.erased),
            parcels={key: parcel.copy() for key, parcel in self.parcels.items()},
            units={key: Unit.from_dict(unit.to_dict()) for key, unit in self.units.items()},
        )
        restarted.resent_updates = [value for kind, value in self.outbox if kind == "update"]
        restarted.resent_sla_events = [value for kind, value in self.outbox if kind == "sla"]
        return restarted
