"""Building blocks the standard-format parsers share: ScanEvent / Manifest dicts, content-hash
event ids, schema checks and issue helpers."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import time
from dataclasses import dataclass
from typing import Any

from producers.formats.base import FormatError, ParsedRecord, ParseIssue, ParseResult
from producers.formats.code_maps import normalise
from schemas.codec import default_codec
from schemas.identifiers import identifier_problems

_RECORD_NAMES = {"scan": "ScanEvent", "manifest": "Manifest"}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def content_id(*parts: object) -> str:
    """Deterministic id of a record's content, so a re-sent message de-duplicates downstream."""
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def references(**values: str | None) -> dict[str, str | None]:
    refs: dict[str, str | None] = dict.fromkeys(("awb", "uld", "bag", "container", "flight_number", "train_id"))
    refs.update(values)
    return refs


def location(
    code: str, kind: str = "facility", country: str | None = None, name: str | None = None
) -> dict[str, str | None]:
    return {"code": code, "kind": kind, "country": country, "name": name}


def scan_event(
    *,
    event_id: str,
    source: str,
    code: str,
    raw_code: str,
    raw_format: str,
    carrier: str,
    event_time_ms: int,
    recorded_time_ms: int,
    utc_offset_minutes: int = 0,
    tracking_number: str | None = None,
    handling_unit: str | None = None,
    location: dict[str, str | None] | None = None,
    refs: dict[str, str | None] | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "tracking_number": tracking_number,
        "handling_unit": handling_unit,
        "source": source,
        "code": code,
        "raw_code": raw_code,
        "raw_format": raw_format,
        "carrier": carrier,
        "event_time_ms": event_time_ms,
        "utc_offset_minutes": utc_offset_minutes,
        "recorded_time_ms": recorded_time_ms,
        "location": location,
        "references": refs or references(),
        "reason": reason,
        "shipment": None,
    }


class ResultBuilder:
    """Collects records and issues; every record is checked against its Avro schema first, so a
    parser bug or an out-of-range value becomes an issue, never a publish failure."""

    def __init__(self) -> None:
        self.result = ParseResult()

    def add(self, kind: str, value: dict[str, Any], reference: str, raw: bytes) -> None:
        problems = default_codec().validate(_RECORD_NAMES[kind], value)
        if problems:
            self.issue(reference, "", "record does not fit its schema: " + "; ".join(problems), raw)
            return
        identifier_issues = identifier_problems(_RECORD_NAMES[kind], value)
        for field, message in identifier_issues:
            self.issue(reference, field, message, raw, "invalid_identifier")
        if identifier_issues:
            return
        self.result.records.append(ParsedRecord(kind, value, reference))  # type: ignore[arg-type]

    def issue(
        self, reference: str, field: str, message: str, raw: bytes, reason_code: str = "malformed_record"
    ) -> None:
        self.result.issues.append(ParseIssue(reference, field, message, raw, reason_code))

    def normalised_code(self, raw_format: str, raw_code: str, reference: str, field: str, raw: bytes) -> str | None:
        """The normalised code, or None after recording an ``unknown_code`` issue."""
        code = normalise(raw_format, raw_code)
        if code is None:
            self.issue(reference, field, f"unknown {raw_format} code {raw_code!r}", raw, "unknown_code")
        return code


def decode_text(data: bytes, what: str) -> str:
    """UTF-8 text of a document (a BOM is allowed); FormatError when it is not text."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise FormatError(f"{what} is not UTF-8 text (byte {error.start})") from None


def load_json(data: bytes, what: str) -> Any:
    """Parse a JSON document; FormatError when the whole document is unreadable."""
    text = decode_text(data, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise FormatError(
            f"{what} is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    except RecursionError:
        raise FormatError(f"{what} is nested too deeply to read") from None


def raw_json(value: Any) -> bytes:
    """The offending part of a JSON document, for the dead-letter payload."""
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str).encode()
    except (ValueError, RecursionError):
        return repr(value).encode()


@dataclass(frozen=True)
class CsvRow:
    line_number: int  # first physical line of the row
    values: dict[str, str]  # column → stripped cell; missing cells are absent
    raw: bytes
    extra_cells: int  # cells beyond the header's columns


def read_csv(text: str, source_name: str, required_columns: tuple[str, ...]) -> list[CsvRow]:
    """Rows of a CSV document with a header row (column names matched case-insensitively).

    FormatError when the header lacks a required column or the CSV cannot be read.
    """
    lines = text.splitlines()
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader, None)
        if header is None:
            raise FormatError(f"{source_name}: empty CSV, expected a header row")
        columns = [name.strip().lower() for name in header]
        missing = [name for name in required_columns if name not in columns]
        if missing:
            raise FormatError(f"{source_name}: CSV header lacks column(s) {', '.join(missing)}")
        rows = []
        previous_line = reader.line_num
        for cells in reader:
            first_line = previous_line + 1
            raw = "\n".join(lines[previous_line : reader.line_num]).encode()
            previous_line = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            values = {name: cell.strip() for name, cell in zip(columns, cells, strict=False) if name}
            rows.append(CsvRow(first_line, values, raw, max(0, len(cells) - len(columns))))
    except csv.Error as error:
        raise FormatError(f"{source_name}: unreadable CSV at line {reader.line_num}: {error}") from None
    return rows
