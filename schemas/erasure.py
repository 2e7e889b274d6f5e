"""A customer's erasure (``parcelstream parcels erase``), as every stage that honours it names it.

The ``ParcelCommand`` (``schemas/avro/parcel_command.v1.avsc``) goes on ``<prefix>.parcel-commands``;
the stream worker and the notifier each consume it. Their audit lines (logger ``parcelstream.audit``)
name the parcel by ``erased_key`` only: one hash of the tracking number, the same in every stage, so
the audit trail of one request can be joined without keeping personal data.
"""

from __future__ import annotations

import hashlib
from typing import Final

#: The logger of audit lines (what was erased, when, why); never personal data.
AUDIT_LOGGER: Final = "parcelstream.audit"


def erased_key(tracking_number: str) -> str:
    """Name of an erased parcel in audit lines and the worker's marker: a hash, so nothing stored or
    logged names the tracking number."""
    return "erased:" + hashlib.sha256(f"erased|{tracking_number}".encode()).hexdigest()[:32]
