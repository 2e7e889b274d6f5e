"""What a tracking number and a handling-unit id may look like, for every stage.

They become Kafka keys, Redis key parts, URL path segments and HTML text, so the rule is strict:
anything else is refused at the edge (producers, gateway) and dead-lettered by any later stage
that meets it. Customers may type tracking numbers in lower case; look-ups upper-case them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

TRACKING_NUMBER_PATTERN: Final = re.compile(r"[A-Z0-9]{8,40}")
TRACKING_NUMBER_RULE: Final = "8 to 40 upper-case letters A-Z and digits 0-9"
#: Bags, ULDs (AKE12345CK), containers (MSCU1234566), AWBs (157-12345675), SSCCs (18 digits).
HANDLING_UNIT_PATTERN: Final = re.compile(r"[A-Z0-9][A-Z0-9-]{3,39}")
HANDLING_UNIT_RULE: Final = "4 to 40 upper-case letters A-Z, digits 0-9 and '-', starting with a letter or digit"


def is_tracking_number(value: object) -> bool:
    return isinstance(value, str) and TRACKING_NUMBER_PATTERN.fullmatch(value) is not None


def is_handling_unit(value: object) -> bool:
    return isinstance(value, str) and HANDLING_UNIT_PATTERN.fullmatch(value) is not None


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def identifier_problems(record_name: str, value: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(field, message) for each identifier of a ScanEvent or Manifest that breaks the rules."""
    problems: list[tuple[str, str]] = []
    if record_name == "ScanEvent":
        tracking_number, handling_unit = value.get("tracking_number"), value.get("handling_unit")
        if tracking_number is not None and not is_tracking_number(tracking_number):
            problems.append(("tracking_number", f"{_shown(tracking_number)} is not {TRACKING_NUMBER_RULE}"))
        if handling_unit is not None and not is_handling_unit(handling_unit):
            problems.append(("handling_unit", f"{_shown(handling_unit)} is not {HANDLING_UNIT_RULE}"))
    elif record_name == "Manifest":
        if not is_handling_unit(value.get("handling_unit")):
            problems.append(("handling_unit", f"{_shown(value.get('handling_unit'))} is not {HANDLING_UNIT_RULE}"))
        parcels = value.get("member_type") == "parcel"
        for index, member in enumerate(value.get("members") or ()):
            valid = is_tracking_number(member) if parcels else is_handling_unit(member)
            if not valid:
                rule = TRACKING_NUMBER_RULE if parcels else HANDLING_UNIT_RULE
                problems.append((f"members[{index}]", f"{_shown(member)} is not {rule}"))
    return problems
