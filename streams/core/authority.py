"""Who may set what on a parcel: the rules that keep one carrier from rewriting another's parcel.

The edge gives API keys scopes (sources and codes); these rules hold in the worker whoever
published the scan, and ``parcel.fold_scan`` asks ``check_scan`` before it changes anything (the
stored parcel keeps its last-mile carrier, so no history is read).

- **Shipment facts are written once.** The first scan that carries a shipment (ORDER_CREATED: service
  level, merchant, destination, order time...) sets it; the same facts again are fine, different
  ones are refused (``shipment_conflict``), whatever the scan's event time: an ORDER_CREATED dated
  earlier does not replace them (the merchant's webhooks and the destination postcode that opens
  the tracking page hang on them).
- **The last mile belongs to one carrier.** The first last-mile scan (``LAST_MILE_CODES``: received
  at the depot, out for delivery, attempt failed, delivered, at a pickup point) names the carrier;
  a last-mile scan of another carrier is refused (``carrier_not_assigned``). The handover itself
  (LASTMILE_HANDOVER) is often scanned by the hub's operator, so it names no last-mile carrier. A
  scan without a carrier names none and is not refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from streams.core.rules import HANDOVER_CODES
from streams.core.taxonomy import InvalidScanError

LAST_MILE_CODES: Final = HANDOVER_CODES - {"LASTMILE_HANDOVER"}


def last_mile_carrier(history: Iterable[dict[str, Any]]) -> str | None:
    """The carrier named by the parcel's last-mile scans (history entries), if any."""
    for entry in history:
        if entry["code"] in LAST_MILE_CODES and entry["carrier"]:
            return str(entry["carrier"])
    return None


def check_scan(shipment: dict[str, Any] | None, last_mile: str | None, scan: dict[str, Any], code: str) -> None:
    """Raise ``InvalidScanError`` if ``scan`` (with its classified ``code``) may not change a parcel
    whose stored shipment facts are ``shipment`` and whose last mile is ``last_mile``'s (the
    carrier ``last_mile_carrier`` finds in its history; None: none yet)."""
    incoming = scan.get("shipment")
    if incoming and shipment is not None and incoming != shipment:
        changed = sorted(name for name in shipment.keys() | incoming.keys() if shipment.get(name) != incoming.get(name))
        raise InvalidScanError(
            "shipment_conflict",
            f"scan {scan.get('event_id')!r} sets other shipment facts ({', '.join(changed)}) than the parcel has",
        )
    carrier = scan.get("carrier")
    if code in LAST_MILE_CODES and carrier:
        assigned = last_mile
        if assigned is not None and carrier != assigned:
            raise InvalidScanError(
                "carrier_not_assigned",
                f"last-mile scan {scan.get('event_id')!r} from {carrier!r}; the parcel's last mile is {assigned!r}",
            )
