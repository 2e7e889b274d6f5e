"""Validators for the identifiers and timestamps the industry standards define.

Every validator is pure; ``parse_*`` functions return the normalised value or raise
``IdentifierError`` with a message fit for a ParseIssue.

- IATA air waybill (Cargo-IMP / ONE Record): 3-digit airline prefix + 8-digit serial whose last
  digit is the first seven modulo 7 (``157-12345675``).
- ISO 6346 freight container: owner code (3 letters) + category (U, J or Z) + 6-digit serial +
  check digit (``CSQU3054383``).
- UPU S10 mail item id: 2-letter service indicator + 8 digits + check digit + ISO country
  (``RR123456785CN``); weights 8 6 4 2 3 5 9 7, check = 11 - sum mod 11 (10 → 0, 11 → 5).
- GS1 keys (GTIN, SSCC, GLN): mod-10 check digit, weights 3 and 1 from the right (EPC URNs and
  Digital Links are read by the ``epcpy`` and ``biip`` libraries in ``gs1_epcis``).
- IATA ULD id: 3-letter type + 4 or 5-digit serial + 2-character owner (``AKE12345CK``).
- IATA airport code: 3 letters, known to ``producers.formats.airports`` (the ``airportsdata``
  data set: country and time zone).
- ISO 8601 timestamps with an explicit UTC offset → UTC epoch ms + offset minutes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from producers.formats.airports import Airport, airport


class IdentifierError(ValueError):
    """An identifier or timestamp that breaks its standard; the message says how."""


_AWB = re.compile(r"^(\d{3})[- ]?(\d{8})$")
_CONTAINER = re.compile(r"^([A-Z]{3})([UJZ])(\d{6})(\d)$")
_S10 = re.compile(r"^([A-Z]{2})(\d{8})(\d)([A-Z]{2})$")
_ULD = re.compile(r"^([A-Z]{3})(\d{4,5})([A-Z0-9]{2})$")
_AIRPORT = re.compile(r"^[A-Z]{3}$")
_S10_WEIGHTS: Final = (8, 6, 4, 2, 3, 5, 9, 7)
# ISO 6346 letter values: A=10 upwards, skipping multiples of 11 (11, 22, 33).
_CONTAINER_LETTER_VALUES: Final[dict[str, int]] = {}
_value = 10
for _letter in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
    if _value % 11 == 0:
        _value += 1
    _CONTAINER_LETTER_VALUES[_letter] = _value
    _value += 1


# --- IATA air waybill -------------------------------------------------------------------------


def awb_check_digit(serial7: str) -> int:
    """Check digit of the first seven digits of an AWB serial: their value modulo 7."""
    return int(serial7) % 7


def parse_awb(text: str) -> str:
    """``157-12345675`` (also ``15712345675`` or ``157 12345675``) → ``157-12345675``."""
    match = _AWB.match(text.strip())
    if not match:
        raise IdentifierError(f"AWB {text!r} is not a 3-digit prefix and 8-digit serial like 157-12345675")
    prefix, serial = match.groups()
    expected = awb_check_digit(serial[:7])
    if int(serial[7]) != expected:
        raise IdentifierError(f"AWB {prefix}-{serial} fails its mod-7 check digit (expected {expected})")
    return f"{prefix}-{serial}"


def is_valid_awb(text: str) -> bool:
    return _is_valid(parse_awb, text)


# --- ISO 6346 container -----------------------------------------------------------------------


def container_check_digit(first_ten: str) -> int:
    """ISO 6346 check digit of owner code + category + 6-digit serial (10 characters)."""
    total = 0
    for position, char in enumerate(first_ten):
        value = _CONTAINER_LETTER_VALUES[char] if char.isalpha() else int(char)
        total += value * (2**position)
    return total % 11 % 10


def parse_container(text: str) -> str:
    """``CSQU3054383`` (spaces and dashes allowed) → ``CSQU3054383``."""
    compact = re.sub(r"[\s-]", "", text).upper()
    match = _CONTAINER.match(compact)
    if not match:
        raise IdentifierError(
            f"container {text!r} is not an ISO 6346 number (owner code, U/J/Z, 6 digits, check digit)"
        )
    expected = container_check_digit(compact[:10])
    if int(compact[10]) != expected:
        raise IdentifierError(f"container {compact} fails its ISO 6346 check digit (expected {expected})")
    return compact


def is_valid_container(text: str) -> bool:
    return _is_valid(parse_container, text)


# --- UPU S10 ----------------------------------------------------------------------------------


def s10_check_digit(serial8: str) -> int:
    remainder = 11 - sum(int(d) * w for d, w in zip(serial8, _S10_WEIGHTS, strict=True)) % 11
    return {10: 0, 11: 5}.get(remainder, remainder)


def looks_like_s10(text: str) -> bool:
    return bool(_S10.match(text))


def parse_s10(text: str) -> str:
    """``RR123456785CN`` → itself, after checking its form and check digit."""
    compact = text.strip().upper()
    match = _S10.match(compact)
    if not match:
        raise IdentifierError(
            f"mail item id {text!r} is not a UPU S10 id (2 letters, 8 digits, check digit, 2-letter country)"
        )
    _service, serial, check, _country = match.groups()
    expected = s10_check_digit(serial)
    if int(check) != expected:
        raise IdentifierError(f"mail item id {compact} fails its S10 check digit (expected {expected})")
    return compact


def is_valid_s10(text: str) -> bool:
    return _is_valid(parse_s10, text)


# --- GS1 keys ---------------------------------------------------------------------------------


def gs1_check_digit(digits_without_check: str) -> int:
    """GS1 mod-10 check digit: weights 3, 1, 3, ... from the rightmost digit."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits_without_check)))
    return (10 - total % 10) % 10


def is_valid_gs1_key(digits: str) -> bool:
    return digits.isdigit() and len(digits) >= 2 and gs1_check_digit(digits[:-1]) == int(digits[-1])


# --- IATA ULD ---------------------------------------------------------------------------------


def parse_uld(text: str) -> str:
    compact = re.sub(r"\s", "", text).upper()
    if not _ULD.match(compact):
        raise IdentifierError(f"ULD {text!r} is not a ULD id (3-letter type, 4-5 digit serial, 2-char owner)")
    return compact


# --- IATA airports ----------------------------------------------------------------------------


def is_airport_code(text: str) -> bool:
    return bool(_AIRPORT.match(text))


def known_airport(code: str) -> Airport:
    """The airport of a well-formed IATA code known to ``producers.formats.airports``."""
    if not is_airport_code(code):
        raise IdentifierError(f"airport {code!r} is not a 3-letter IATA airport code")
    found = airport(code)
    if found is None:
        raise IdentifierError(f"airport {code} is not a known IATA airport (its time zone is needed)")
    return found


# --- timestamps -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timestamp:
    epoch_ms: int  # UTC
    utc_offset_minutes: int  # local offset, kept for display


def parse_timestamp(text: str) -> Timestamp:
    """ISO 8601 date-time with an explicit offset (``Z`` or ``±hh:mm``) → UTC ms + offset minutes."""
    if not isinstance(text, str):
        raise IdentifierError(f"timestamp {text!r} is not a string")
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise IdentifierError(f"timestamp {text!r} is not ISO 8601 (e.g. 2024-10-16T14:30:00+02:00)") from None
    return timestamp_of(moment, text)


def timestamp_of(moment: datetime, text: str = "") -> Timestamp:
    offset = moment.utcoffset()
    if offset is None:
        raise IdentifierError(f"timestamp {text or moment.isoformat()!r} has no UTC offset (add Z or ±hh:mm)")
    try:
        epoch_ms = int(moment.timestamp() * 1000)
    except (OverflowError, ValueError, OSError):
        raise IdentifierError(f"timestamp {text!r} is out of range") from None
    return Timestamp(epoch_ms, int(offset / timedelta(minutes=1)))


def parse_utc_offset(text: str) -> int:
    """``+02:00`` / ``-06:00`` / ``Z`` → minutes east of UTC."""
    match = re.fullmatch(r"([+-])(\d{2}):?(\d{2})|Z", text.strip()) if isinstance(text, str) else None
    if not match:
        raise IdentifierError(f"time zone offset {text!r} is not ±hh:mm")
    if match.group(0) == "Z":
        return 0
    sign, hours, minutes = match.groups()
    value = int(hours) * 60 + int(minutes)
    if int(hours) > 14 or int(minutes) > 59:
        raise IdentifierError(f"time zone offset {text!r} is out of range")
    return -value if sign == "-" else value


def _is_valid(parser: object, text: str) -> bool:
    try:
        parser(text)  # type: ignore[operator]
    except IdentifierError:
        return False
    return True
