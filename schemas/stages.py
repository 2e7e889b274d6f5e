"""The hub's stages, names only (the ``stage`` of ParcelState and of the dwell and backlog metrics).

Which milestones make up each stage, and how long a parcel stays, is decided in
``streams/core/stages.py``; the projector counts the parcels in each stage (``consumers/backlog.py``).
"""

from __future__ import annotations

from typing import Final

#: In journey order.
STAGES: Final[tuple[str, ...]] = ("export_customs", "linehaul", "import_customs", "hub", "last_mile")
