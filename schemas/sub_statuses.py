"""The sub-status each normalised scan code gives a parcel (the values of ``sub_status`` in
ParcelState, its history and StatusUpdate).

``streams/core/taxonomy.py`` decides a scan's status and sub-status; this is the same vocabulary for the
stages that only read it (the customer messages of ``consumers/journey.py`` are keyed by it).
``tests/consumers/test_journey.py`` fails when the two drift apart.
"""

from __future__ import annotations

from typing import Final

SUB_STATUS_OF_CODE: Final[dict[str, str]] = {
    "ORDER_CREATED": "order_created",
    "ORIGIN_RECEIVED": "received_at_origin",
    "ORIGIN_SORTED": "sorted_at_origin",
    "EXPORT_CUSTOMS_PRESENTED": "export_customs_presented",
    "EXPORT_CUSTOMS_CLEARED": "export_customs_cleared",
    "EXPORT_CUSTOMS_HELD": "held_export",
    "EXPORT_CANCELLED": "export_cancelled",
    "LINEHAUL_BOOKED": "linehaul_booked",
    "LINEHAUL_RECEIVED": "received_by_linehaul",
    "LINEHAUL_MANIFESTED": "linehaul_manifested",
    "LINEHAUL_DEPARTED": "departed_origin",
    "TRANSIT_ARRIVED": "arrived_at_transit",
    "TRANSIT_DEPARTED": "departed_transit",
    "LINEHAUL_ARRIVED": "arrived_at_destination",
    "LINEHAUL_UNLOADED": "unloaded_at_destination",
    "LINEHAUL_DISCREPANCY": "linehaul_discrepancy",
    "IMPORT_CUSTOMS_PRESENTED": "import_customs_presented",
    "IMPORT_CUSTOMS_HELD": "held_import",
    "IMPORT_CUSTOMS_CLEARED": "import_customs_cleared",
    "HUB_RECEIVED": "received_at_hub",
    "HUB_SORTED": "sorted_at_hub",
    "HUB_MISSORTED": "missorted_at_hub",
    "HUB_DEPARTED": "departed_hub",
    "LASTMILE_HANDOVER": "handed_to_last_mile",
    "LASTMILE_RECEIVED": "at_delivery_office",
    "OUT_FOR_DELIVERY": "out_for_delivery",
    "DELIVERY_ATTEMPT_FAILED": "attempt_failed",
    "AVAILABLE_FOR_PICKUP": "at_pickup_point",
    "DELIVERED": "delivered",
    "RETURN_TO_SENDER": "returning_to_sender",
    "RETURNED": "returned_to_sender",
    "LOST": "lost",
    "DAMAGED": "damaged",
    "CARRIER_INFORMATION": "carrier_information",
}

SUB_STATUSES: Final[frozenset[str]] = frozenset(SUB_STATUS_OF_CODE.values())
