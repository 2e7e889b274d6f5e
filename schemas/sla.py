"""Names of the SLA rules and of their events (the values of SlaEvent.rule and SlaEvent.kind)."""

from __future__ import annotations

from typing import Final

SLA_RULES: Final[dict[str, str]] = {
    "promise": "End-to-end delivery promise of the service level, counted from the order",
    "customs_clearance": "Import customs cleared within the limit after linehaul arrival",
    "hub_dwell": "Hub dwell from linehaul arrival to last-mile handover under the limit",
    "last_mile_delivery": "Delivered within the limit after last-mile handover",
    "silence": "No scan for too long while in transit: the parcel may be lost",
}

SLA_EVENT_KINDS: Final[tuple[str, ...]] = ("at_risk", "breach", "recovered")
