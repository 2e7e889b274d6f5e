"""Four realistic parcels for the tracking page and notifier tests (and docs/screenshots.py): an
import from Hangzhou to Belgium delivered, in transit, held by customs, and returning to the sender.
Statuses and sub-statuses come from the stream processor's taxonomy, as the worker would set them."""

from __future__ import annotations

from typing import Any

from streams.core.taxonomy import classify
from tests.consumers.helpers import BASE_TIME_MS, parcel_state

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
CHINA, BELGIUM = 480, 60

WAREHOUSE = {"code": "CN-HGH-WH1", "kind": "facility", "country": "CN", "name": "Cainiao Hangzhou export warehouse"}
HGH = {"code": "HGH", "kind": "airport", "country": "CN", "name": "Hangzhou Xiaoshan International Airport"}
LGG = {"code": "LGG", "kind": "airport", "country": "BE", "name": "Liège Airport"}
CUSTOMS = {"code": "LGG-CUSTOMS", "kind": "facility", "country": "BE", "name": "Belgian customs, Liège Airport"}
HUB = {"code": "LGG-HUB-1", "kind": "facility", "country": "BE", "name": "Cainiao eWTP hub, Liège Airport"}
DEPOT = {"code": "GLS-BE-DEPOT", "kind": "facility", "country": "BE", "name": "GLS delivery depot"}
ROUND = {"code": "GLS-BE-R07", "kind": "address_area", "country": "BE", "name": "Delivery round"}

#: (code, hours after the order, place, UTC offset, carrier, reason)
Step = tuple[str, float, dict[str, Any], int, str, str | None]

TO_DEPARTURE: list[Step] = [
    ("ORDER_CREATED", 0, WAREHOUSE, CHINA, "CAINIAO", None),
    ("ORIGIN_RECEIVED", 20, WAREHOUSE, CHINA, "CAINIAO", None),
    ("ORIGIN_SORTED", 23, WAREHOUSE, CHINA, "CAINIAO", None),
    ("EXPORT_CUSTOMS_CLEARED", 30, WAREHOUSE, CHINA, "CN-CUSTOMS", None),
    ("LINEHAUL_MANIFESTED", 40, HGH, CHINA, "CK", None),
    ("LINEHAUL_DEPARTED", 44, HGH, CHINA, "CK", None),
]
TO_CUSTOMS: list[Step] = [
    *TO_DEPARTURE,
    ("LINEHAUL_ARRIVED", 58, LGG, BELGIUM, "CK", None),
    ("LINEHAUL_UNLOADED", 60, LGG, BELGIUM, "CK", None),
    ("IMPORT_CUSTOMS_PRESENTED", 62, CUSTOMS, BELGIUM, "BE-CUSTOMS", None),
]
TO_DELIVERY: list[Step] = [
    *TO_CUSTOMS,
    ("IMPORT_CUSTOMS_CLEARED", 66, CUSTOMS, BELGIUM, "BE-CUSTOMS", None),
    ("HUB_RECEIVED", 68, HUB, BELGIUM, "CAINIAO", None),
    ("HUB_SORTED", 70, HUB, BELGIUM, "CAINIAO", None),
    ("LASTMILE_HANDOVER", 73, HUB, BELGIUM, "CAINIAO", None),
    ("LASTMILE_RECEIVED", 80, DEPOT, BELGIUM, "GLS", None),
    ("OUT_FOR_DELIVERY", 90, DEPOT, BELGIUM, "GLS", None),
]


def journey_state(tracking_number: str, steps: list[Step], **overrides: Any) -> dict[str, Any]:
    """A ParcelState whose history is ``steps`` (the last one current)."""
    history = []
    for index, (code, hours, place, offset, carrier, reason) in enumerate(steps, start=1):
        classification = classify(code)
        history.append(
            {
                "event_id": f"ev-{index:03d}",
                "code": code,
                "raw_code": code.lower(),
                "status": classification.status,
                "sub_status": classification.sub_status,
                "event_time_ms": BASE_TIME_MS + int(hours * HOUR_MS),
                "utc_offset_minutes": offset,
                "location": place,
                "carrier": carrier,
                "reason": reason,
            }
        )
    last = history[-1]
    fields = {
        "sub_status": last["sub_status"],
        "last_event_id": last["event_id"],
        "last_event_time_ms": last["event_time_ms"],
        "last_location": last["location"],
        "carrier": last["carrier"],
        "estimated_delivery": {
            "earliest_ms": BASE_TIME_MS + 6 * DAY_MS,
            "latest_ms": BASE_TIME_MS + 8 * DAY_MS,
            "promised_ms": BASE_TIME_MS + 10 * DAY_MS,
        },
    }
    state = parcel_state(tracking_number, len(history), last["status"], history=history, **fields)
    state.update(overrides)
    return state


def delivered(tracking_number: str) -> dict[str, Any]:
    steps = [*TO_DELIVERY, ("DELIVERED", 94.5, ROUND, BELGIUM, "GLS", None)]
    delivered_ms = BASE_TIME_MS + int(94.5 * HOUR_MS)
    return journey_state(
        tracking_number,
        steps,
        estimated_delivery={"earliest_ms": delivered_ms, "latest_ms": delivered_ms, "promised_ms": None},
    )


def in_transit(tracking_number: str, steps: list[Step] | None = None) -> dict[str, Any]:
    return journey_state(tracking_number, steps or TO_DEPARTURE)


def held_in_customs(tracking_number: str) -> dict[str, Any]:
    """Held for days: the customs clearance limit is breached, so the parcel runs late."""
    steps = [*TO_CUSTOMS, ("IMPORT_CUSTOMS_HELD", 64, CUSTOMS, BELGIUM, "BE-CUSTOMS", "IOSS number missing or invalid")]
    return journey_state(
        tracking_number, steps, estimated_delivery=None, on_time=False, open_sla=["customs_clearance:breach"]
    )


def returning(tracking_number: str) -> dict[str, Any]:
    steps = [
        *TO_DELIVERY,
        ("DELIVERY_ATTEMPT_FAILED", 95, ROUND, BELGIUM, "GLS", "Address incomplete; recipient could not be found"),
        ("RETURN_TO_SENDER", 120, DEPOT, BELGIUM, "GLS", None),
    ]
    return journey_state(tracking_number, steps, estimated_delivery=None)


#: The window the worker gives once customs hold the parcel of ``window_moved``: Sat 10 – Tue 13 Jan,
#: 3 and 4 days after the 7 – 9 Jan of ``journey_state``.
HELD_WINDOW = {"earliest_ms": BASE_TIME_MS + 9 * DAY_MS, "latest_ms": BASE_TIME_MS + 12 * DAY_MS, "promised_ms": None}


def window_moved(tracking_number: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two states of one parcel: presented to customs (window 7 – 9 Jan), then held by customs in
    Belgium on 3 Jan, which moves the window to 10 – 13 Jan (not yet late: no SLA breached)."""
    before = journey_state(tracking_number, TO_CUSTOMS)
    held = [*TO_CUSTOMS, ("IMPORT_CUSTOMS_HELD", 64, CUSTOMS, BELGIUM, "BE-CUSTOMS", None)]
    return before, journey_state(tracking_number, held, estimated_delivery=dict(HELD_WINDOW))
