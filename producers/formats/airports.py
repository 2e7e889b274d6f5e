"""IATA airport codes the air-cargo parsers know: country and IANA time zone.

Cargo-IMP FSU and Cargo-XML XFSU messages give local times without an offset, so converting them
to UTC needs the airport's time zone. The codes come from the maintained ``airportsdata`` package
(MIT licence, ~7,900 airports with an IATA code, each with its ISO country and IANA time zone),
pinned in pyproject.toml; a well-formed code missing there is reported as ``unknown_location``
rather than guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import airportsdata


@dataclass(frozen=True)
class Airport:
    code: str
    country: str  # ISO 3166-1 alpha-2
    time_zone: str  # IANA
    name: str


@cache
def _table() -> dict[str, dict[str, object]]:
    # Loaded once per process (~60 ms, a few MB): the parsers look codes up per status line.
    return airportsdata.load("IATA")


def airport(code: str) -> Airport | None:
    """The airport of an IATA code, or None when the data set does not list it."""
    row = _table().get(code)
    if row is None or not row.get("tz"):
        return None
    return Airport(code, str(row["country"]), str(row["tz"]), str(row["name"]))
