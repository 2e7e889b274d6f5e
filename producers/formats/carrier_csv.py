"""Last-mile carriers' CSV feeds (the layout docs/formats.md documents) → parcel ScanEvents.

A header row names the columns (any order, case-insensitive): ``tracking_number``, ``status``
(the carrier status words of ``code_maps.CARRIER_CSV``, case-insensitive), ``event_time``
(ISO 8601 with offset), ``location`` (depot, pickup point or area; optional), ``reason``
(optional, e.g. why an attempt failed) and ``carrier`` (required unless the publisher is given
``--carrier``). A tracking number in UPU S10 form (``RR123456785CN``) must have a valid check
digit. The event id is a hash of the row's content, so a re-sent file de-duplicates.
"""

from __future__ import annotations

import re
from typing import Any

from producers.formats.base import ParseResult
from producers.formats.code_maps import normalise
from producers.formats.identifiers import IdentifierError, looks_like_s10, parse_s10, parse_timestamp
from producers.formats.records import ResultBuilder, content_id, decode_text, location, now_ms, read_csv, scan_event

RAW_FORMAT = "carrier-csv"
REQUIRED_COLUMNS = ("tracking_number", "status", "event_time")
_TRACKING_NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{3,63}$")


def parse(data: bytes, source_name: str, *, carrier: str | None = None) -> ParseResult:
    text = decode_text(data, source_name)
    builder = ResultBuilder()
    recorded = now_ms()
    for row in read_csv(text, source_name, REQUIRED_COLUMNS):
        reference = f"{source_name}:{row.line_number}"
        if row.extra_cells:
            builder.issue(reference, "", f"row has {row.extra_cells} cell(s) more than the header", row.raw)
            continue
        outcome = _scan(row.values, carrier, recorded)
        if isinstance(outcome, tuple):
            field, message, reason_code = outcome
            builder.issue(reference, field, message, row.raw, reason_code)
        else:
            builder.add("scan", outcome, reference, row.raw)
    return builder.result


def _scan(values: dict[str, str], carrier: str | None, recorded: int) -> dict[str, Any] | tuple[str, str, str]:
    tracking_number = values.get("tracking_number", "")
    if not _TRACKING_NUMBER.match(tracking_number):
        return "tracking_number", f"tracking number {tracking_number!r} is not 4-64 letters/digits", "malformed_record"
    if looks_like_s10(tracking_number.upper()):
        try:
            tracking_number = parse_s10(tracking_number)
        except IdentifierError as error:
            return "tracking_number", str(error), "malformed_record"
    raw_code = values.get("status", "").upper()
    code = normalise(RAW_FORMAT, raw_code)
    if code is None:
        return "status", f"unknown carrier status {values.get('status', '')!r}", "unknown_code"
    try:
        when = parse_timestamp(values.get("event_time", ""))
    except IdentifierError as error:
        return "event_time", str(error), "malformed_record"
    row_carrier = carrier or values.get("carrier") or ""
    if not row_carrier:
        return "carrier", "carrier is empty (fill the column or publish with --carrier)", "malformed_record"
    place = values.get("location") or None
    reason = values.get("reason") or None
    return scan_event(
        event_id=content_id(RAW_FORMAT, row_carrier, tracking_number, raw_code, when.epoch_ms, place, reason),
        source="lastmile",
        code=code,
        raw_code=raw_code,
        raw_format=RAW_FORMAT,
        carrier=row_carrier,
        event_time_ms=when.epoch_ms,
        utc_offset_minutes=when.utc_offset_minutes,
        recorded_time_ms=recorded,
        tracking_number=tracking_number,
        location=location(place) if place else None,
        reason=reason,
    )
