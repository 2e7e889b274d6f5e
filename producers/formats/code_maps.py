"""Carriers' own codes → normalised scan codes (schemas/scan_codes.py), one table per format.

Used by the format adapters and the hub simulator, so a raw code means the same everywhere.
A code missing here is reported as unknown, never guessed.
"""

from __future__ import annotations

from typing import Final

#: IATA Cargo-IMP FSU / Cargo-XML XFSU status codes (air cargo, per AWB): every status code of the
#: Cargo-IMP FSU. Notices that move nothing are informational (CARRIER_INFORMATION): documents
#: received or handed over (AWR, AWD: not a customs step), deliveries to the consignee (DLV, DDL:
#: the AWB's consignee may be an agent or broker, not the hub, so they are not a hub receipt), and
#: warehouse moves whose side of the journey the code does not tell (FIW, FOW).
IATA_FSU: Final[dict[str, str]] = {
    "BKD": "LINEHAUL_BOOKED",
    "FOH": "LINEHAUL_RECEIVED",
    "RCS": "LINEHAUL_RECEIVED",
    "FIW": "CARRIER_INFORMATION",  # freight into a warehouse: origin or destination, the code does not say
    "MAN": "LINEHAUL_MANIFESTED",
    "PRE": "LINEHAUL_MANIFESTED",  # prepared for loading on the manifested flight
    "FOW": "CARRIER_INFORMATION",  # freight out of a warehouse: likewise
    "DEP": "LINEHAUL_DEPARTED",
    "TRM": "TRANSIT_ARRIVED",  # at a transfer point, to be handed to another carrier
    "TFD": "TRANSIT_DEPARTED",
    "RCT": "TRANSIT_ARRIVED",
    "ARR": "LINEHAUL_ARRIVED",
    "RCF": "LINEHAUL_UNLOADED",
    "NFD": "LINEHAUL_UNLOADED",
    "AWR": "CARRIER_INFORMATION",
    "AWD": "CARRIER_INFORMATION",
    "CRC": "IMPORT_CUSTOMS_PRESENTED",  # reported to customs
    "TGC": "IMPORT_CUSTOMS_PRESENTED",  # transferred to customs / government control
    "CCD": "IMPORT_CUSTOMS_CLEARED",
    "DLV": "CARRIER_INFORMATION",
    "DDL": "CARRIER_INFORMATION",
    "DIS": "LINEHAUL_DISCREPANCY",
}

#: UPU EMSEVT v3 event codes (standard M40), postal / e-commerce.
UPU_EMSEVT: Final[dict[str, str]] = {
    "EMA": "ORIGIN_RECEIVED",
    "EMB": "ORIGIN_SORTED",
    "EXA": "EXPORT_CUSTOMS_PRESENTED",
    "EXB": "EXPORT_CUSTOMS_HELD",
    "EXC": "EXPORT_CUSTOMS_CLEARED",
    "EXD": "EXPORT_CUSTOMS_HELD",
    "EXX": "EXPORT_CANCELLED",
    "EMC": "LINEHAUL_DEPARTED",
    "EMJ": "TRANSIT_ARRIVED",
    "EMK": "TRANSIT_DEPARTED",
    "EMD": "LINEHAUL_ARRIVED",
    "EDA": "IMPORT_CUSTOMS_PRESENTED",
    "EDB": "IMPORT_CUSTOMS_PRESENTED",
    "EME": "IMPORT_CUSTOMS_HELD",
    "EMF": "IMPORT_CUSTOMS_CLEARED",
    "EDC": "HUB_DEPARTED",
    "EMG": "LASTMILE_RECEIVED",
    "EDD": "AVAILABLE_FOR_PICKUP",
    "EMH": "DELIVERY_ATTEMPT_FAILED",
    "EMI": "DELIVERED",
}

#: GS1 EPCIS 2.0 CBV bizStep values (warehouse and supply chain). ``shipping`` is the usual code of
#: the hub's handover; the EPCIS parser decides it from the event's destination (a dispatch at the
#: start of the chain is ORIGIN_SORTED). CBV steps missing here move no parcel (gs1_epcis.CBV_BIZ_STEPS).
GS1_EPCIS_BIZSTEP: Final[dict[str, str]] = {
    "receiving": "HUB_RECEIVED",
    "accepting": "HUB_RECEIVED",
    "inspecting": "HUB_RECEIVED",
    "sorting": "HUB_SORTED",
    "packing": "ORIGIN_SORTED",
    "loading": "HUB_SORTED",
    "staging_outbound": "HUB_SORTED",
    "holding": "IMPORT_CUSTOMS_HELD",
    "departing": "HUB_DEPARTED",
    "shipping": "LASTMILE_HANDOVER",
    "arriving": "HUB_RECEIVED",
    "commissioning": "ORDER_CREATED",
    "unloading": "LINEHAUL_UNLOADED",
}

#: Customs decisions (Belgian customs' digitised procedure, as our customs feed reports them).
CUSTOMS: Final[dict[str, str]] = {
    "PRESENTED": "IMPORT_CUSTOMS_PRESENTED",
    "HELD": "IMPORT_CUSTOMS_HELD",
    "RELEASED": "IMPORT_CUSTOMS_CLEARED",
    "EXPORT_RELEASED": "EXPORT_CUSTOMS_CLEARED",
}

#: Last-mile carrier CSV feeds (docs/formats.md documents the layout): their status words.
CARRIER_CSV: Final[dict[str, str]] = {
    "HANDOVER": "LASTMILE_HANDOVER",
    "AT_DEPOT": "LASTMILE_RECEIVED",
    "OUT_FOR_DELIVERY": "OUT_FOR_DELIVERY",
    "NOT_HOME": "DELIVERY_ATTEMPT_FAILED",
    "ADDRESS_PROBLEM": "DELIVERY_ATTEMPT_FAILED",
    "AT_PICKUP_POINT": "AVAILABLE_FOR_PICKUP",
    "DELIVERED": "DELIVERED",
    "PICKED_UP": "DELIVERED",
    "RETURN_TO_SENDER": "RETURN_TO_SENDER",
    "RETURNED": "RETURNED",
    "LOST": "LOST",
    "DAMAGED": "DAMAGED",
    "MISSORTED": "HUB_MISSORTED",
}

#: raw_format (schemas/scan_codes.RAW_FORMATS) → its table.
BY_RAW_FORMAT: Final[dict[str, dict[str, str]]] = {
    "iata-fsu": IATA_FSU,
    "iata-xfsu": IATA_FSU,
    "iata-onerecord": IATA_FSU,
    "upu-emsevt": UPU_EMSEVT,
    "gs1-epcis": GS1_EPCIS_BIZSTEP,
    "customs": CUSTOMS,
    "carrier-csv": CARRIER_CSV,
}


def normalise(raw_format: str, raw_code: str) -> str | None:
    """The normalised code of a carrier's code, or None when the code is unknown."""
    table = BY_RAW_FORMAT.get(raw_format)
    return table.get(raw_code) if table else None
