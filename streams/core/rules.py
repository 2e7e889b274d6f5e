"""SLA rule configuration and the scan-code groups the rules read: plain data, shared by the state
machine (`parcel.py`) and the SLA rules (`sla.py`). The worker builds ``SlaRules`` from its settings
(`streams/settings.py`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

HOUR_MS: Final = 3600 * 1000
DAY_MS: Final = 24 * HOUR_MS

ARRIVAL_CODES: Final = frozenset({"LINEHAUL_ARRIVED", "LINEHAUL_UNLOADED"})
DELIVERED_CODES: Final = frozenset({"DELIVERED", "AVAILABLE_FOR_PICKUP"})
HANDOVER_CODES: Final = frozenset(
    {"LASTMILE_HANDOVER", "LASTMILE_RECEIVED", "OUT_FOR_DELIVERY", "DELIVERY_ATTEMPT_FAILED"} | DELIVERED_CODES
)
CUSTOMS_CLEARED_CODES: Final = frozenset({"IMPORT_CUSTOMS_CLEARED", "HUB_DEPARTED"} | HANDOVER_CODES)
#: Statuses in which a long silence means the parcel may be lost.
SILENCE_STATUSES: Final = frozenset({"InTransit", "OutForDelivery"})


@dataclass(frozen=True)
class SlaRules:
    """SLA configuration; durations in milliseconds. ``SlaRules()`` has the documented defaults."""

    promise_ms: dict[str, int] = field(
        default_factory=lambda: {"standard": 10 * DAY_MS, "express": 5 * DAY_MS, "economy": 20 * DAY_MS}
    )
    customs_clearance_ms: int = 24 * HOUR_MS
    hub_dwell_ms: int = 12 * HOUR_MS
    last_mile_delivery_ms: int = 48 * HOUR_MS
    silence_ms: int = 72 * HOUR_MS
    at_risk_fraction: float = 0.8

    def promise_for(self, service_level: str | None) -> int:
        """Promise of a service level; an unknown or missing level gets the standard promise."""
        return self.promise_ms.get(service_level or "standard", self.promise_ms["standard"])


@dataclass(frozen=True)
class Retention:
    """How long the worker keeps what it knows (event time, milliseconds); the worker builds it from
    ``PARCELSTREAM_RETENTION_DAYS``, ``PARCELSTREAM_EXPIRE_DAYS``, ``PARCELSTREAM_UNIT_RETENTION_DAYS``."""

    #: A closed parcel (delivered, returned, lost, expired) is archived this long after it closed.
    retention_ms: int = 30 * DAY_MS
    #: An open parcel with no scan for this long expires (status Expired); an archived parcel's
    #: marker (which refuses late scans) is deleted this long after the archiving.
    expire_ms: int = 60 * DAY_MS
    #: A handling unit is forgotten this long after its last scan or manifest (ULD ids are reused).
    unit_retention_ms: int = 7 * DAY_MS
