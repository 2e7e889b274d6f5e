"""The customer-facing status taxonomy shared by every stage (names only).

Which scan code leads to which status is decided in ``streams/core/taxonomy.py``; consumers translate
these names for customers (``consumers/i18n``). Order is the normal progress of a parcel.
"""

from __future__ import annotations

from typing import Final

STATUSES: Final[tuple[str, ...]] = (
    "InfoReceived",
    "InTransit",
    "CustomsHold",
    "OutForDelivery",
    "AttemptFail",
    "AvailableForPickup",
    "Delivered",
    "Exception",
    "Expired",
)

#: Statuses a parcel normally does not leave.
TERMINAL_STATUSES: Final[frozenset[str]] = frozenset({"Delivered", "Expired"})
