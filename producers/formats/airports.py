"""IATA airport codes the air-cargo parsers know: country and IANA time zone.

Cargo-IMP FSU messages give local times without an offset, so converting them to UTC needs the
airport's time zone. This is a deliberately small list (the hubs and cargo airports on the lanes
parcelstream serves); a well-formed code missing here is reported as ``unknown_location`` rather
than guessed. Add a line to support another airport.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Airport:
    code: str
    country: str  # ISO 3166-1 alpha-2
    time_zone: str  # IANA
    name: str


_ROWS: Final = (
    # Europe
    ("LGG", "BE", "Europe/Brussels", "Liège"),
    ("BRU", "BE", "Europe/Brussels", "Brussels"),
    ("AMS", "NL", "Europe/Amsterdam", "Amsterdam Schiphol"),
    ("FRA", "DE", "Europe/Berlin", "Frankfurt"),
    ("LEJ", "DE", "Europe/Berlin", "Leipzig/Halle"),
    ("MUC", "DE", "Europe/Berlin", "Munich"),
    ("CGN", "DE", "Europe/Berlin", "Cologne Bonn"),
    ("CDG", "FR", "Europe/Paris", "Paris Charles de Gaulle"),
    ("LHR", "GB", "Europe/London", "London Heathrow"),
    ("EMA", "GB", "Europe/London", "East Midlands"),
    ("LUX", "LU", "Europe/Luxembourg", "Luxembourg"),
    ("MAD", "ES", "Europe/Madrid", "Madrid"),
    ("MXP", "IT", "Europe/Rome", "Milan Malpensa"),
    ("VIE", "AT", "Europe/Vienna", "Vienna"),
    ("ZRH", "CH", "Europe/Zurich", "Zurich"),
    ("BUD", "HU", "Europe/Budapest", "Budapest"),
    ("WAW", "PL", "Europe/Warsaw", "Warsaw"),
    ("IST", "TR", "Europe/Istanbul", "Istanbul"),
    # Middle East
    ("DXB", "AE", "Asia/Dubai", "Dubai"),
    ("DWC", "AE", "Asia/Dubai", "Dubai World Central"),
    ("DOH", "QA", "Asia/Qatar", "Doha"),
    # Asia
    ("HGH", "CN", "Asia/Shanghai", "Hangzhou"),
    ("PVG", "CN", "Asia/Shanghai", "Shanghai Pudong"),
    ("PEK", "CN", "Asia/Shanghai", "Beijing Capital"),
    ("CAN", "CN", "Asia/Shanghai", "Guangzhou"),
    ("SZX", "CN", "Asia/Shanghai", "Shenzhen"),
    ("CGO", "CN", "Asia/Shanghai", "Zhengzhou"),
    ("HKG", "HK", "Asia/Hong_Kong", "Hong Kong"),
    ("TPE", "TW", "Asia/Taipei", "Taipei"),
    ("ICN", "KR", "Asia/Seoul", "Seoul Incheon"),
    ("NRT", "JP", "Asia/Tokyo", "Tokyo Narita"),
    ("SIN", "SG", "Asia/Singapore", "Singapore"),
    ("BKK", "TH", "Asia/Bangkok", "Bangkok"),
    ("DEL", "IN", "Asia/Kolkata", "Delhi"),
    # Americas
    ("JFK", "US", "America/New_York", "New York JFK"),
    ("ORD", "US", "America/Chicago", "Chicago O'Hare"),
    ("MIA", "US", "America/New_York", "Miami"),
    ("LAX", "US", "America/Los_Angeles", "Los Angeles"),
    ("ANC", "US", "America/Anchorage", "Anchorage"),
    ("MEM", "US", "America/Chicago", "Memphis"),
    ("SDF", "US", "America/New_York", "Louisville"),
    ("YYZ", "CA", "America/Toronto", "Toronto"),
    ("GRU", "BR", "America/Sao_Paulo", "São Paulo Guarulhos"),
    ("MEX", "MX", "America/Mexico_City", "Mexico City"),
    # Africa and Oceania
    ("ADD", "ET", "Africa/Addis_Ababa", "Addis Ababa"),
    ("JNB", "ZA", "Africa/Johannesburg", "Johannesburg"),
    ("NBO", "KE", "Africa/Nairobi", "Nairobi"),
    ("SYD", "AU", "Australia/Sydney", "Sydney"),
)

AIRPORTS: Final[dict[str, Airport]] = {row[0]: Airport(*row) for row in _ROWS}
