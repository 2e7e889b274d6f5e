"""UPU EMSEVT v3 postal events (standard M40) in their flat JSON / CSV rendering → parcel ScanEvents.

M40 itself is an EDI message; parcelstream accepts the flat rendering of the EMSEVT v3 data
elements that postal operators' APIs and exports commonly give (docs/formats.md, "UPU EMSEVT v3"):

- JSON: one object, an array of objects, or JSON Lines (one object per line);
- CSV: a header row naming the columns (any order, case-insensitive).

Fields: ``mail_item_id`` (UPU S10, check digit verified), ``event_code`` (EMA..EMI, EXA..EXX,
EDA..EDD), ``event_time`` (ISO 8601 with offset), ``office_code`` (IMPC office code: 2-letter
country + office, e.g. ``CNPEKA``), ``reason_code`` (required for EMH non-delivery and EME customs
retention), ``action_code`` (required for EMH: the non-delivery measure), and optional
``reason`` (free text) and ``carrier``; other fields (e.g. ``next_office_code``) are accepted and
not used. EMSEVT has no event id, so the id is a
hash of the event's content.
"""

from __future__ import annotations

import json
import re
from typing import Any

from producers.formats.base import FormatError, ParseResult
from producers.formats.code_maps import normalise
from producers.formats.identifiers import IdentifierError, parse_s10, parse_timestamp
from producers.formats.records import (
    ResultBuilder,
    content_id,
    decode_text,
    location,
    now_ms,
    raw_json,
    read_csv,
    references,
    scan_event,
)

RAW_FORMAT = "upu-emsevt"
REQUIRED_FIELDS = ("mail_item_id", "event_code", "event_time", "office_code")
#: Event codes whose EMSEVT record must say why (and, for EMH, what happens next).
NEEDS_REASON = frozenset({"EMH", "EME"})
NEEDS_ACTION = frozenset({"EMH"})
_OFFICE = re.compile(r"^[A-Z]{2}[A-Z0-9]{1,33}$")
_CUSTOMS = frozenset({"EXA", "EXB", "EXC", "EXD", "EXX", "EDA", "EDB", "EME", "EMF"})
_TRANSPORT = frozenset({"EMC", "EMD", "EMJ", "EMK"})
_DELIVERY = frozenset({"EMG", "EMH", "EMI", "EDD"})


def source_of(event_code: str) -> str:
    """Which kind of party scanned: customs, the airline/transport leg, delivery, or a postal office."""
    if event_code in _CUSTOMS:
        return "customs"
    if event_code in _TRANSPORT:
        return "flight"
    if event_code in _DELIVERY:
        return "lastmile"
    return "warehouse"


def _items(data: bytes, source_name: str) -> list[tuple[str, str, Any, bytes]]:
    """(reference, field prefix, item, raw) of every event in the document."""
    text = decode_text(data, source_name)
    stripped = text.lstrip()
    if not stripped:
        raise FormatError(f"{source_name}: empty EMSEVT document")
    if stripped[0] in "[{":
        try:
            document = json.loads(text)
        except json.JSONDecodeError:
            return _json_lines(text, source_name)
        except RecursionError:
            raise FormatError(f"{source_name}: JSON nested too deeply to read") from None
        items = document if isinstance(document, list) else [document]
        return [(f"{source_name} item {i + 1}", f"[{i}].", item, raw_json(item)) for i, item in enumerate(items)]
    return [
        (f"{source_name}:{row.line_number}", "", row.values if not row.extra_cells else None, row.raw)
        for row in read_csv(text, source_name, REQUIRED_FIELDS)
    ]


def _json_lines(text: str, source_name: str) -> list[tuple[str, str, Any, bytes]]:
    items: list[tuple[str, str, Any, bytes]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as error:
            item = error
        items.append((f"{source_name}:{number}", "", item, line.encode()))
    if all(isinstance(item, Exception) for _, _, item, _ in items):
        raise FormatError(f"{source_name}: neither a JSON document nor JSON Lines")
    return items


def parse(data: bytes, source_name: str, *, carrier: str | None = None) -> ParseResult:
    builder = ResultBuilder()
    recorded = now_ms()
    for reference, prefix, item, raw in _items(data, source_name):
        if isinstance(item, Exception):
            builder.issue(reference, "", f"not a JSON object: {item}", raw)
            continue
        if not isinstance(item, dict):
            message = "row has more cells than the header" if item is None else "not a JSON object"
            builder.issue(reference, prefix.rstrip("."), message, raw)
            continue
        outcome = _scan(item, carrier, recorded)
        if isinstance(outcome, tuple):
            field, message, reason_code = outcome
            builder.issue(reference, prefix + field, message, raw, reason_code)
        else:
            builder.add("scan", outcome, reference, raw)
    return builder.result


def _text(item: dict[str, Any], name: str) -> str | None:
    """A field as text: strings stripped, integers (reason codes in JSON) as their digits."""
    value = item.get(name)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value.strip() or None
    return None


def _scan(item: dict[str, Any], carrier: str | None, recorded: int) -> dict[str, Any] | tuple[str, str, str]:
    for name in REQUIRED_FIELDS:
        if _text(item, name) is None:
            return name, f"{name} is missing or not text", "malformed_record"
    try:
        mail_item = parse_s10(_text(item, "mail_item_id") or "")
    except IdentifierError as error:
        return "mail_item_id", str(error), "malformed_record"
    raw_code = (_text(item, "event_code") or "").upper()
    code = normalise(RAW_FORMAT, raw_code)
    if code is None:
        return "event_code", f"unknown EMSEVT event code {raw_code!r}", "unknown_code"
    try:
        when = parse_timestamp(_text(item, "event_time") or "")
    except IdentifierError as error:
        return "event_time", str(error), "malformed_record"
    office = (_text(item, "office_code") or "").upper()
    if not _OFFICE.match(office):
        return (
            "office_code",
            f"office code {office!r} is not an IMPC code (country + office, e.g. CNPEKA)",
            "malformed_record",
        )
    reason_code, action_code = _text(item, "reason_code"), _text(item, "action_code")
    if raw_code in NEEDS_REASON and reason_code is None:
        return "reason_code", f"{raw_code} needs a reason_code", "malformed_record"
    if raw_code in NEEDS_ACTION and action_code is None:
        return "action_code", f"{raw_code} needs an action_code", "malformed_record"
    reason_parts = [
        f"reason {reason_code}" if reason_code else "",
        f"action {action_code}" if action_code else "",
        _text(item, "reason") or "",
    ]
    return scan_event(
        event_id=content_id(RAW_FORMAT, mail_item, raw_code, when.epoch_ms, office, reason_code, action_code),
        source=source_of(raw_code),
        code=code,
        raw_code=raw_code,
        raw_format=RAW_FORMAT,
        carrier=carrier or _text(item, "carrier") or f"UPU-{mail_item[-2:]}",
        event_time_ms=when.epoch_ms,
        utc_offset_minutes=when.utc_offset_minutes,
        recorded_time_ms=recorded,
        tracking_number=mail_item,
        location=location(office, "facility", office[:2]),
        refs=references(),
        reason="; ".join(part for part in reason_parts if part) or None,
    )
