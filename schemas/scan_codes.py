"""The normalised scan codes: the milestone vocabulary every producer maps carrier codes onto.

Producers translate each carrier's own code (IATA FSU ``DEP``, UPU ``EMD``, EPCIS ``sorting``, a
last-mile carrier's CSV status) into one of these and keep the raw code beside it. The stream
processor maps these codes to customer statuses (``streams/core/taxonomy.py``). A scan whose code is not
listed here is dead-lettered, never guessed.
"""

from __future__ import annotations

from typing import Final

SCAN_CODES: Final[dict[str, str]] = {
    # Origin
    "ORDER_CREATED": "Order placed; the carrier has the shipment data but not the parcel",
    "ORIGIN_RECEIVED": "Parcel received at the origin warehouse or posting office",
    "ORIGIN_SORTED": "Parcel sorted and bagged at the origin warehouse",
    "EXPORT_CUSTOMS_PRESENTED": "Presented to export customs",
    "EXPORT_CUSTOMS_CLEARED": "Released by export customs",
    "EXPORT_CUSTOMS_HELD": "Held by export customs",
    "EXPORT_CANCELLED": "Export cancelled",
    # Linehaul (cargo flight, block train, sea container)
    "LINEHAUL_BOOKED": "Booked on a flight, train or vessel",
    "LINEHAUL_RECEIVED": "Received by the linehaul carrier from the shipper",
    "LINEHAUL_MANIFESTED": "Manifested on a flight, train or vessel",
    "LINEHAUL_DEPARTED": "Departed on a flight, train or vessel",
    "TRANSIT_ARRIVED": "Arrived at a transit point",
    "TRANSIT_DEPARTED": "Departed from a transit point",
    "LINEHAUL_ARRIVED": "Arrived at the destination airport, rail terminal or port",
    "LINEHAUL_UNLOADED": "Received from the flight, train or vessel at the destination",
    "LINEHAUL_DISCREPANCY": "Pieces missing or damaged on arrival",
    # Import customs
    "IMPORT_CUSTOMS_PRESENTED": "Presented to import customs",
    "IMPORT_CUSTOMS_HELD": "Held by import customs",
    "IMPORT_CUSTOMS_CLEARED": "Released by import customs",
    # Hub
    "HUB_RECEIVED": "Received at the hub warehouse",
    "HUB_SORTED": "Sorted at the hub",
    "HUB_MISSORTED": "Sorted to the wrong outbound lane; being re-sorted",
    "HUB_DEPARTED": "Left the hub",
    # Last mile
    "LASTMILE_HANDOVER": "Handed over to the last-mile carrier",
    "LASTMILE_RECEIVED": "Arrived at the last-mile carrier's delivery office",
    "OUT_FOR_DELIVERY": "Out for delivery",
    "DELIVERY_ATTEMPT_FAILED": "Delivery attempt failed",
    "AVAILABLE_FOR_PICKUP": "Waiting at a pickup point",
    "DELIVERED": "Delivered",
    # Exceptions
    "RETURN_TO_SENDER": "Being returned to the sender",
    "RETURNED": "Returned to the sender",
    "LOST": "Declared lost",
    "DAMAGED": "Declared damaged",
    # Information
    "CARRIER_INFORMATION": "A carrier's notice that moves nothing (documents handed over, consignee delivery); "
    "kept in the history, the status stays",
}

#: How a scan reached us; ``raw_code`` is in this format's vocabulary.
RAW_FORMATS: Final[dict[str, str]] = {
    "iata-fsu": "IATA Cargo-IMP FSU status message (air cargo, per AWB)",
    "iata-xfsu": "IATA Cargo-XML XFSU status message",
    "iata-onerecord": "IATA ONE Record LogisticsEvent (JSON-LD)",
    "upu-emsevt": "UPU EMSEVT v3 postal event (standard M40)",
    "gs1-epcis": "GS1 EPCIS 2.0 event (CBV bizStep)",
    "customs": "Customs authority decision",
    "carrier-csv": "Last-mile carrier CSV feed (documented layout)",
    "parcelstream-json": "parcelstream's own JSON Lines / CSV scan files",
    "simulator": "parcelstream's hub simulator",
}


def is_scan_code(code: str) -> bool:
    return code in SCAN_CODES
