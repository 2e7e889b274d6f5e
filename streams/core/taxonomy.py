"""Normalised scan code → customer status, sub-status and milestone.

Every code of ``schemas.scan_codes.SCAN_CODES`` has exactly one classification here; a code that
is not listed raises ``UnknownScanCode`` (the worker dead-letters the scan) and is never guessed.

Terminal states. A parcel's current status is the status of its latest event in event time, except
after a terminal event, which holds against later events unless they are in its ``reopened_by``:

- ``DELIVERED`` (Delivered) is reopened only by what can really follow a delivery: a new delivery
  step (``OUT_FOR_DELIVERY``, ``DELIVERY_ATTEMPT_FAILED``, ``AVAILABLE_FOR_PICKUP``: the carrier
  corrects a wrong "delivered" scan), another ``DELIVERED``, or an exception (``RETURN_TO_SENDER``,
  ``RETURNED``, ``LOST``, ``DAMAGED``). Upstream scans (origin, linehaul, customs, hub, handover)
  stamped after the delivery come from devices with wrong clocks: they enter the history only.
- ``RETURNED`` (Exception/returned_to_sender) is final: the sender has the parcel back, a new
  shipment gets a new tracking number. Later events enter the history only.

Informational codes (``INFORMATIONAL``: a carrier's notice that moves nothing) enter the history
and never replace the current status; only a parcel's very first event, if informational, sets it.

Every other status (including Exception/lost: a lost parcel that scans again has been found) is
simply replaced by the next event in event time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from schemas.scan_codes import SCAN_CODES
from schemas.statuses import STATUSES

#: Where a parcel is in its journey, in the normal order; the ETA counts remaining time from these.
MILESTONES: Final[tuple[str, ...]] = (
    "ordered",
    "origin",
    "export_customs",
    "linehaul_booked",
    "linehaul",
    "arrival",
    "import_customs",
    "hub",
    "last_mile",
    "out_for_delivery",
    "delivery_attempt",
    "delivered",
    "returning",
    "returned",
    "exception",
)


class InvalidScanError(ValueError):
    """A scan the stream processor cannot apply; the worker dead-letters it with these fields."""

    def __init__(self, reason_code: str, reason: str) -> None:
        super().__init__(reason)
        self.reason_code = reason_code
        self.reason = reason


class UnknownScanCode(InvalidScanError):  # noqa: N818 (the name the worker catches)
    """A scan code missing from the taxonomy (and so from ``schemas.scan_codes.SCAN_CODES``)."""

    def __init__(self, code: str) -> None:
        super().__init__("unknown_code", f"scan code {code!r} is not a normalised scan code (schemas/scan_codes.py)")
        self.code = code


@dataclass(frozen=True, slots=True)
class Classification:
    code: str
    status: str  # one of schemas.statuses.STATUSES
    sub_status: str
    milestone: str  # one of MILESTONES
    terminal: bool = False
    #: Codes of later events that end a terminal state (see the module doc); empty when not terminal.
    reopened_by: frozenset[str] = frozenset()

    def holds_against(self, later_code: str) -> bool:
        """True when this state stays current although ``later_code`` happened after it (terminal, informational)."""
        return later_code in INFORMATIONAL or (self.terminal and later_code not in self.reopened_by)


_DELIVERY_REOPENERS: Final = frozenset(
    {
        "OUT_FOR_DELIVERY",
        "DELIVERY_ATTEMPT_FAILED",
        "AVAILABLE_FOR_PICKUP",
        "DELIVERED",
        "RETURN_TO_SENDER",
        "RETURNED",
        "LOST",
        "DAMAGED",
    }
)


def _c(code: str, status: str, sub_status: str, milestone: str) -> Classification:
    return Classification(code, status, sub_status, milestone)


TAXONOMY: Final[dict[str, Classification]] = {
    c.code: c
    for c in (
        # Origin
        _c("ORDER_CREATED", "InfoReceived", "order_created", "ordered"),
        _c("ORIGIN_RECEIVED", "InTransit", "received_at_origin", "origin"),
        _c("ORIGIN_SORTED", "InTransit", "sorted_at_origin", "origin"),
        _c("EXPORT_CUSTOMS_PRESENTED", "InTransit", "export_customs_presented", "export_customs"),
        _c("EXPORT_CUSTOMS_CLEARED", "InTransit", "export_customs_cleared", "export_customs"),
        _c("EXPORT_CUSTOMS_HELD", "CustomsHold", "held_export", "export_customs"),
        _c("EXPORT_CANCELLED", "Exception", "export_cancelled", "exception"),
        # Linehaul
        _c("LINEHAUL_BOOKED", "InTransit", "linehaul_booked", "linehaul_booked"),
        _c("LINEHAUL_RECEIVED", "InTransit", "received_by_linehaul", "linehaul_booked"),
        _c("LINEHAUL_MANIFESTED", "InTransit", "linehaul_manifested", "linehaul_booked"),
        _c("LINEHAUL_DEPARTED", "InTransit", "departed_origin", "linehaul"),
        _c("TRANSIT_ARRIVED", "InTransit", "arrived_at_transit", "linehaul"),
        _c("TRANSIT_DEPARTED", "InTransit", "departed_transit", "linehaul"),
        _c("LINEHAUL_ARRIVED", "InTransit", "arrived_at_destination", "arrival"),
        _c("LINEHAUL_UNLOADED", "InTransit", "unloaded_at_destination", "arrival"),
        _c("LINEHAUL_DISCREPANCY", "Exception", "linehaul_discrepancy", "arrival"),
        # Import customs
        _c("IMPORT_CUSTOMS_PRESENTED", "InTransit", "import_customs_presented", "import_customs"),
        _c("IMPORT_CUSTOMS_HELD", "CustomsHold", "held_import", "import_customs"),
        _c("IMPORT_CUSTOMS_CLEARED", "InTransit", "import_customs_cleared", "import_customs"),
        # Hub
        _c("HUB_RECEIVED", "InTransit", "received_at_hub", "hub"),
        _c("HUB_SORTED", "InTransit", "sorted_at_hub", "hub"),
        _c("HUB_MISSORTED", "InTransit", "missorted_at_hub", "hub"),
        _c("HUB_DEPARTED", "InTransit", "departed_hub", "hub"),
        # Last mile
        _c("LASTMILE_HANDOVER", "InTransit", "handed_to_last_mile", "last_mile"),
        _c("LASTMILE_RECEIVED", "InTransit", "at_delivery_office", "last_mile"),
        _c("OUT_FOR_DELIVERY", "OutForDelivery", "out_for_delivery", "out_for_delivery"),
        _c("DELIVERY_ATTEMPT_FAILED", "AttemptFail", "attempt_failed", "delivery_attempt"),
        _c("AVAILABLE_FOR_PICKUP", "AvailableForPickup", "at_pickup_point", "delivery_attempt"),
        Classification(
            "DELIVERED", "Delivered", "delivered", "delivered", terminal=True, reopened_by=_DELIVERY_REOPENERS
        ),
        # Exceptions
        _c("RETURN_TO_SENDER", "Exception", "returning_to_sender", "returning"),
        Classification("RETURNED", "Exception", "returned_to_sender", "returned", terminal=True),
        _c("LOST", "Exception", "lost", "exception"),
        _c("DAMAGED", "Exception", "damaged", "exception"),
        # Information
        _c("CARRIER_INFORMATION", "InTransit", "carrier_information", "linehaul"),
    )
}

#: Codes that never replace the current status (see the module doc).
INFORMATIONAL: Final = frozenset({"CARRIER_INFORMATION"})


def classify(code: str) -> Classification:
    """The classification of a normalised scan code; ``UnknownScanCode`` when there is none."""
    try:
        return TAXONOMY[code]
    except KeyError:
        raise UnknownScanCode(code) from None


def _check_taxonomy() -> None:
    # Fail at import, not on the first parcel, if the vocabulary and this table drift apart.
    missing = set(SCAN_CODES) - set(TAXONOMY)
    extra = set(TAXONOMY) - set(SCAN_CODES)
    bad = [c.code for c in TAXONOMY.values() if c.status not in STATUSES or c.milestone not in MILESTONES]
    if missing or extra or bad:
        raise RuntimeError(f"streams.core.taxonomy out of sync: missing {missing}, extra {extra}, bad {bad}")


_check_taxonomy()
