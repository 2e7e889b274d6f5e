"""parcelstream's own scan files: JSON Lines and CSV, one scan or manifest per line.

The layout is documented in docs/formats.md ("parcelstream JSON Lines / CSV"). Both parsers turn
each line into the same nested record (``type``, ``event_time``, ``location`` ...), validate it and
convert it into a ScanEvent or Manifest dict. Every problem becomes a ParseIssue naming
``<source_name>:<line>`` and the field; a bad line never stops the rest of the file.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from producers.formats.base import FormatError, ParsedRecord, ParseIssue, ParseResult
from schemas.codec import default_codec
from schemas.identifiers import identifier_problems
from schemas.scan_codes import RAW_FORMATS, SCAN_CODES

DEFAULT_RAW_FORMAT: Final = "parcelstream-json"
RECORD_TYPES: Final = ("scan", "manifest")
REFERENCE_FIELDS: Final = ("awb", "uld", "bag", "container", "flight_number", "train_id")
LOCATION_FIELDS: Final = ("code", "kind", "country", "name")
SHIPMENT_FIELDS: Final = (
    "service_level",
    "flow",
    "origin_country",
    "destination_country",
    "destination_postcode",
    "merchant",
    "ordered_time",
)
SCAN_FIELDS: Final = (
    "type",
    "event_id",
    "tracking_number",
    "handling_unit",
    "source",
    "code",
    "raw_code",
    "raw_format",
    "carrier",
    "event_time",
    "recorded_time",
    "location",
    "references",
    "reason",
    "shipment",
    *REFERENCE_FIELDS,
)
MANIFEST_FIELDS: Final = (
    "type",
    "manifest_id",
    "handling_unit",
    "unit_type",
    "action",
    "members",
    "member_type",
    "carrier",
    "source",
    "event_time",
    "recorded_time",
    "references",
    *REFERENCE_FIELDS,
)
#: CSV columns: the JSON fields, with nested objects flattened as location_<field> / shipment_<field>.
CSV_COLUMNS: Final = tuple(
    dict.fromkeys(
        [name for name in (*SCAN_FIELDS, *MANIFEST_FIELDS) if name not in ("location", "references", "shipment")]
        + [f"location_{name}" for name in LOCATION_FIELDS]
        + [f"shipment_{name}" for name in SHIPMENT_FIELDS]
    )
)
CSV_MEMBER_SEPARATOR: Final = "|"
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _enum_symbols(record_name: str, *path: str) -> tuple[str, ...]:
    """Symbols of an enum in the registered schema, so this module never re-types the contract."""
    node: Any = default_codec().latest(record_name).parsed
    for name in path:
        if isinstance(node, list):  # a union: the non-null branch
            node = next(branch for branch in node if branch != "null")
        fields = node["fields"] if "fields" in node else node["type"]["fields"]
        node = next(f["type"] for f in fields if f["name"] == name)
    if isinstance(node, list):
        node = next(branch for branch in node if branch != "null")
    return tuple(node["symbols"])


SOURCES: Final = _enum_symbols("ScanEvent", "source")
LOCATION_KINDS: Final = _enum_symbols("ScanEvent", "location", "kind")
SERVICE_LEVELS: Final = _enum_symbols("ScanEvent", "shipment", "service_level")
FLOWS: Final = _enum_symbols("ScanEvent", "shipment", "flow")
UNIT_TYPES: Final = _enum_symbols("Manifest", "unit_type")
ACTIONS: Final = _enum_symbols("Manifest", "action")
MEMBER_TYPES: Final = _enum_symbols("Manifest", "member_type")


@dataclass(frozen=True)
class _FieldProblem:
    field: str
    message: str
    reason_code: str = "malformed_record"


def parse_time(text: str) -> tuple[int, int]:
    """ISO-8601 time with an offset → (UTC epoch milliseconds, offset in minutes)."""
    moment = datetime.fromisoformat(text)
    offset = moment.utcoffset()
    if offset is None:
        raise ValueError("has no UTC offset (write e.g. 2026-11-20T08:15:00+08:00 or ...Z)")
    return (moment - _EPOCH) // timedelta(milliseconds=1), offset // timedelta(minutes=1)


class _RecordBuilder:
    """Validates one line's nested record and builds the Avro dict; collects every problem."""

    def __init__(self, record: dict[str, Any], carrier: str | None, field_name: Callable[[str], str]) -> None:
        self.record = record
        self.carrier = carrier
        self.field_name = field_name
        self.problems: list[_FieldProblem] = []

    def problem(self, field: str, message: str, reason_code: str = "malformed_record") -> None:
        self.problems.append(_FieldProblem(self.field_name(field), message, reason_code))

    def string(self, source: dict[str, Any], key: str, path: str, *, required: bool) -> str | None:
        value = source.get(key)
        if value is None or value == "":
            if required:
                self.problem(path, "is required")
            return None
        if not isinstance(value, str):
            self.problem(path, f"must be a string, got {type(value).__name__} {value!r}")
            return None
        return value

    def choice(self, source: dict[str, Any], key: str, path: str, allowed: tuple[str, ...], *, required: bool) -> Any:
        value = self.string(source, key, path, required=required)
        if value is not None and value not in allowed:
            self.problem(path, f"{value!r} is not one of {', '.join(allowed)}")
            return None
        return value

    def time(self, source: dict[str, Any], key: str, path: str, *, required: bool) -> tuple[int, int] | None:
        text = self.string(source, key, path, required=required)
        if text is None:
            return None
        try:
            return parse_time(text)
        except ValueError as error:
            detail = str(error) if "offset" in str(error) else "is not an ISO-8601 time"
            self.problem(path, f"{text!r} {detail}")
            return None

    def unknown_fields(self, known: tuple[str, ...]) -> None:
        for key in self.record:
            if key not in known:
                self.problem(key, "is not a field of this record type (see docs/formats.md)")

    def check_carrier(self) -> str | None:
        carrier = self.string(self.record, "carrier", "carrier", required=True)
        if carrier is not None and self.carrier is not None and carrier != self.carrier:
            self.problem(
                "carrier", f"is {carrier!r}, but this file is published for {self.carrier!r}", "carrier_mismatch"
            )
        return carrier

    def references(self) -> dict[str, str | None]:
        nested = self.record.get("references")
        if nested is None:
            nested = {}
        elif not isinstance(nested, dict):
            self.problem("references", "must be an object")
            nested = {}
        for key in nested:
            if key not in REFERENCE_FIELDS:
                self.problem(f"references.{key}", f"is not a reference; known: {', '.join(REFERENCE_FIELDS)}")
        references: dict[str, str | None] = {}
        for key in REFERENCE_FIELDS:
            flat = self.string(self.record, key, key, required=False)
            inner = self.string(nested, key, f"references.{key}", required=False)
            if flat is not None and inner is not None and flat != inner:
                self.problem(key, f"is {flat!r} but references.{key} is {inner!r}")
            references[key] = flat if flat is not None else inner
        return references

    def location(self) -> dict[str, Any] | None:
        value = self.record.get("location")
        if value is None or value == "":
            return None
        if isinstance(value, str):
            value = {"code": value}
        if not isinstance(value, dict):
            self.problem("location", "must be a location code or an object {code, kind, country, name}")
            return None
        for key in value:
            if key not in LOCATION_FIELDS:
                self.problem(f"location.{key}", f"is not a location field; known: {', '.join(LOCATION_FIELDS)}")
        country = self.string(value, "country", "location.country", required=False)
        if country is not None and not _COUNTRY.match(country):
            self.problem("location.country", f"{country!r} is not an ISO 3166-1 alpha-2 code (e.g. BE)")
        return {
            "code": self.string(value, "code", "location.code", required=True),
            "kind": self.choice(value, "kind", "location.kind", LOCATION_KINDS, required=False) or "facility",
            "country": country,
            "name": self.string(value, "name", "location.name", required=False),
        }

    def shipment(self, event_time_ms: int | None) -> dict[str, Any] | None:
        value = self.record.get("shipment")
        if value is None:
            return None
        if not isinstance(value, dict):
            self.problem("shipment", "must be an object")
            return None
        for key in value:
            if key not in SHIPMENT_FIELDS:
                self.problem(f"shipment.{key}", f"is not a shipment field; known: {', '.join(SHIPMENT_FIELDS)}")
        ordered = self.time(value, "ordered_time", "shipment.ordered_time", required=False)
        return {
            "service_level": self.choice(
                value, "service_level", "shipment.service_level", SERVICE_LEVELS, required=False
            )
            or "standard",
            "flow": self.choice(value, "flow", "shipment.flow", FLOWS, required=False) or "import",
            "origin_country": self.string(value, "origin_country", "shipment.origin_country", required=True),
            "destination_country": self.string(
                value, "destination_country", "shipment.destination_country", required=True
            ),
            "destination_postcode": self.string(
                value, "destination_postcode", "shipment.destination_postcode", required=True
            ),
            "merchant": self.string(value, "merchant", "shipment.merchant", required=False),
            # The order time defaults to the scan's time: shipment facts ride on ORDER_CREATED.
            "ordered_time_ms": ordered[0] if ordered else event_time_ms,
        }

    def scan(self) -> dict[str, Any]:
        self.unknown_fields(SCAN_FIELDS)
        code = self.string(self.record, "code", "code", required=True)
        if code is not None and code not in SCAN_CODES:
            self.problem("code", f"{code!r} is not a parcelstream scan code (schemas/scan_codes.py)", "unknown_code")
        raw_format = self.string(self.record, "raw_format", "raw_format", required=False) or DEFAULT_RAW_FORMAT
        if raw_format not in RAW_FORMATS:
            self.problem("raw_format", f"{raw_format!r} is not one of {', '.join(RAW_FORMATS)}")
        tracking_number = self.string(self.record, "tracking_number", "tracking_number", required=False)
        handling_unit = self.string(self.record, "handling_unit", "handling_unit", required=False)
        if not self.record.get("tracking_number") and not self.record.get("handling_unit"):
            self.problem("tracking_number", "a scan needs a tracking_number or a handling_unit")
        event_time = self.time(self.record, "event_time", "event_time", required=True)
        recorded_time = self.time(self.record, "recorded_time", "recorded_time", required=False)
        return {
            "event_id": self.string(self.record, "event_id", "event_id", required=True),
            "tracking_number": tracking_number,
            "handling_unit": handling_unit,
            "source": self.choice(self.record, "source", "source", SOURCES, required=True),
            "code": code,
            "raw_code": self.string(self.record, "raw_code", "raw_code", required=False) or code,
            "raw_format": raw_format,
            "carrier": self.check_carrier(),
            "event_time_ms": event_time[0] if event_time else None,
            "utc_offset_minutes": event_time[1] if event_time else 0,
            "recorded_time_ms": (recorded_time or event_time or (None,))[0],
            "location": self.location(),
            "references": self.references(),
            "reason": self.string(self.record, "reason", "reason", required=False),
            "shipment": self.shipment(event_time[0] if event_time else None),
        }

    def members(self) -> list[str]:
        value = self.record.get("members")
        if value in (None, [], ""):
            self.problem("members", "is required: at least one member id")
            return []
        if not isinstance(value, list):
            self.problem("members", "must be a list of member ids")
            return []
        members = []
        for index, member in enumerate(value):
            if not isinstance(member, str) or not member:
                self.problem(f"members[{index}]", f"must be a non-empty string, got {member!r}")
            else:
                members.append(member)
        return members

    def manifest(self) -> dict[str, Any]:
        self.unknown_fields(MANIFEST_FIELDS)
        event_time = self.time(self.record, "event_time", "event_time", required=True)
        recorded_time = self.time(self.record, "recorded_time", "recorded_time", required=False)
        return {
            "manifest_id": self.string(self.record, "manifest_id", "manifest_id", required=True),
            "handling_unit": self.string(self.record, "handling_unit", "handling_unit", required=True),
            "unit_type": self.choice(self.record, "unit_type", "unit_type", UNIT_TYPES, required=True),
            "action": self.choice(self.record, "action", "action", ACTIONS, required=False) or "add",
            "members": self.members(),
            "member_type": self.choice(self.record, "member_type", "member_type", MEMBER_TYPES, required=True),
            "carrier": self.check_carrier(),
            "source": self.choice(self.record, "source", "source", SOURCES, required=True),
            "event_time_ms": event_time[0] if event_time else None,
            "recorded_time_ms": (recorded_time or event_time or (None,))[0],
            "references": self.references(),
        }


def _build(
    record: Any, reference: str, raw: bytes, carrier: str | None, field_name: Callable[[str], str]
) -> ParsedRecord | list[ParseIssue]:
    """One line's record → a ParsedRecord, or the issues that stop it."""
    if not isinstance(record, dict):
        return [ParseIssue(reference, "(line)", f"must be a JSON object, got {type(record).__name__}", raw)]
    kind = record.get("type") or "scan"
    if kind not in RECORD_TYPES:
        return [ParseIssue(reference, field_name("type"), f"{kind!r} is not one of {', '.join(RECORD_TYPES)}", raw)]
    builder = _RecordBuilder(record, carrier, field_name)
    value = builder.scan() if kind == "scan" else builder.manifest()
    if not builder.problems:
        # Last line of defence: the contract itself (catches anything the checks above missed).
        record_name = "ScanEvent" if kind == "scan" else "Manifest"
        for error in default_codec().validate(record_name, value):
            builder.problems.append(_FieldProblem("(schema)", error))
        for field, message in identifier_problems(record_name, value):
            builder.problems.append(_FieldProblem(field_name(field), message, "invalid_identifier"))
    if builder.problems:
        return [ParseIssue(reference, p.field, p.message, raw, p.reason_code) for p in builder.problems]
    return ParsedRecord(kind, value, reference)


def _lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(line number from 1, line bytes without the line ending), skipping blank lines."""
    if data.startswith(b"\xef\xbb\xbf"):  # UTF-8 byte order mark some spreadsheet tools write
        data = data[3:]
    for number, raw_line in enumerate(data.split(b"\n"), start=1):
        line = raw_line.removesuffix(b"\r")
        if line.strip():
            yield number, line


def _decode(line: bytes, reference: str) -> str | ParseIssue:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as error:
        return ParseIssue(reference, "(line)", f"is not valid UTF-8 (byte {error.start + 1})", line, "undecodable")


def _add(result: ParseResult, outcome: ParsedRecord | list[ParseIssue]) -> None:
    if isinstance(outcome, ParsedRecord):
        result.records.append(outcome)
    else:
        result.issues.extend(outcome)


def parse_jsonl(data: bytes, source_name: str, *, carrier: str | None = None) -> ParseResult:
    """parcelstream JSON Lines: one JSON object (scan or manifest) per line."""
    result = ParseResult()
    for number, line in _lines(data):
        reference = f"{source_name}:{number}"
        text = _decode(line, reference)
        if isinstance(text, ParseIssue):
            result.issues.append(text)
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as error:
            result.issues.append(
                ParseIssue(reference, "(line)", f"is not valid JSON: {error.msg} at column {error.colno}", line)
            )
            continue
        except RecursionError:
            result.issues.append(ParseIssue(reference, "(line)", "is JSON nested too deeply to read", line, "too_deep"))
            continue
        _add(result, _build(record, reference, line, carrier, lambda path: path))
    return result


def _csv_field_name(path: str) -> str:
    """A nested field path as the CSV column the user wrote: location.kind → location_kind."""
    path = re.sub(r"\[\d+\]$", "", path)
    head, _, tail = path.partition(".")
    if head == "references":
        return tail or head
    return f"{head}_{tail}" if tail else head


def _nest_csv_row(row: dict[str, str]) -> dict[str, Any]:
    """A CSV row → the nested record the JSON Lines layout uses; empty cells are absent."""
    record: dict[str, Any] = {}
    for column, cell in row.items():
        if cell == "":
            continue
        group, _, name = column.partition("_")
        if group in ("location", "shipment") and name in (LOCATION_FIELDS if group == "location" else SHIPMENT_FIELDS):
            record.setdefault(group, {})[name] = cell
        elif column == "members":
            record["members"] = [member.strip() for member in cell.split(CSV_MEMBER_SEPARATOR)]
        else:
            record[column] = cell
    return record


def parse_csv(data: bytes, source_name: str, *, carrier: str | None = None) -> ParseResult:
    """parcelstream CSV: a header row, then one scan or manifest per line (no line breaks inside cells).

    Raises FormatError when the header itself is unusable (undecodable, unknown or repeated
    columns): then no line of the file can be read.
    """
    result = ParseResult()
    lines = _lines(data)
    first = next(lines, None)
    if first is None:
        return result
    header_number, header_line = first
    try:
        header = [name.strip() for name in next(csv.reader([header_line.decode("utf-8")]))]
    except UnicodeDecodeError:
        raise FormatError(f"{source_name}:{header_number}: the CSV header is not valid UTF-8") from None
    except csv.Error as error:
        raise FormatError(f"{source_name}:{header_number}: the CSV header is not valid CSV: {error}") from None
    unknown = [name for name in header if name not in CSV_COLUMNS]
    if unknown:
        raise FormatError(
            f"{source_name}:{header_number}: unknown CSV column(s) {', '.join(map(repr, unknown))} "
            "(see docs/formats.md for the columns)"
        )
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise FormatError(f"{source_name}:{header_number}: repeated CSV column(s) {', '.join(repeated)}")
    for number, line in lines:
        reference = f"{source_name}:{number}"
        text = _decode(line, reference)
        if isinstance(text, ParseIssue):
            result.issues.append(text)
            continue
        try:
            cells = next(csv.reader([text], strict=True))
        except csv.Error as error:
            result.issues.append(ParseIssue(reference, "(line)", f"is not valid CSV: {error}", line))
            continue
        if len(cells) != len(header):
            message = f"has {len(cells)} cells, the header has {len(header)} columns"
            result.issues.append(ParseIssue(reference, "(line)", message, line))
            continue
        record = _nest_csv_row(dict(zip(header, (cell.strip() for cell in cells), strict=True)))
        _add(result, _build(record, reference, line, carrier, _csv_field_name))
    return result
