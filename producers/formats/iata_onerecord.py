"""IATA ONE Record ``LogisticsEvent`` (JSON-LD) → unit-level ScanEvents.

Accepted documents (docs/formats.md, "IATA ONE Record"): one LogisticsEvent object, a JSON array of
them, or a JSON-LD document with ``@graph`` (nodes of other types in the graph are used to resolve
``@id`` references, e.g. the linked Waybill or the event Location). Property names may be plain
(``eventCode``, with an ``@vocab`` context), prefixed (``cargo:eventCode``) or full IRIs; values may
be plain or ``{"@value": ...}``. Per event:

- ``eventCode``: a string (``DEP``), a CodeListElement (``{"code": "DEP"}``) or a code list IRI
  ending in the code; mapped through the IATA status code table.
- ``eventDate``: ISO 8601 with an offset. ``creationDate`` (when present) is the recorded time.
- ``eventFor`` (ONE Record 3.x) or ``linkedObject`` (API 2.x): the logistics object the event is
  about. Its AWB (``waybillPrefix`` + ``waybillNumber``, or an ``@id`` ending in ``157-12345675`` /
  ``15712345675``) becomes the handling unit; a ULD (``uldTypeCode`` + ``uldSerialNumber`` +
  ``ownerCode``) its ULD id; anything else is identified by its ``@id`` IRI.
- ``eventLocation``: ``locationCodes[].code`` (or ``code``): an IATA airport, UN/LOCODE or facility.
- ``eventTimeType``: only ``ACTUAL`` (the default) events are scans; planned or estimated ones are
  reported as ``unsupported_record``. ``partialEventIndicator: true`` is kept in ``reason``.
- ``@id``: the event id (events are immutable, so the IRI identifies the event); without one, a
  hash of the event's content.
"""

from __future__ import annotations

import re
from typing import Any

from producers.formats.airports import AIRPORTS
from producers.formats.base import FormatError, ParseResult
from producers.formats.code_maps import normalise
from producers.formats.identifiers import IdentifierError, is_airport_code, parse_awb, parse_timestamp, parse_uld
from producers.formats.records import (
    ResultBuilder,
    content_id,
    load_json,
    location,
    now_ms,
    raw_json,
    references,
    scan_event,
)
from schemas.identifiers import is_handling_unit

RAW_FORMAT = "iata-onerecord"
_AWB_AT_END = re.compile(r"(\d{3})-?(\d{8})/?$")
_CODE_AT_END = re.compile(r"([A-Z]{3})$")
_LOCODE = re.compile(r"^[A-Z]{2}[A-Z2-9]{3}$")


def _local(key: str) -> str:
    """``cargo:eventCode`` / ``https://onerecord.iata.org/ns/cargo#eventCode`` → ``eventCode``."""
    if key.startswith("@"):
        return key
    return key.rsplit("#", 1)[-1].rsplit(":", 1)[-1].rsplit("/", 1)[-1]


def _compact(node: Any) -> Any:
    """Strip vocabulary prefixes from property names, recursively."""
    if isinstance(node, dict):
        return {_local(str(key)): _compact(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_compact(item) for item in node]
    return node


def _scalar(value: Any) -> Any:
    """A JSON-LD value: ``{"@value": x}`` → x; a one-element list → its element."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, dict) and "@value" in value:
        return value["@value"]
    return value


def _types(node: dict[str, Any]) -> set[str]:
    declared = node.get("@type", [])
    return {_local(str(t)) for t in (declared if isinstance(declared, list) else [declared])}


class _Graph:
    """Nodes by ``@id``, to follow references to nodes given elsewhere in the document."""

    def __init__(self, nodes: list[Any]) -> None:
        self.by_id = {n["@id"]: n for n in nodes if isinstance(n, dict) and isinstance(n.get("@id"), str)}

    def resolve(self, value: Any) -> Any:
        value = _scalar(value)
        if isinstance(value, dict) and set(value) <= {"@id", "@type"} and value.get("@id") in self.by_id:
            return {**self.by_id[value["@id"]], **value}
        return value


def _events(document: Any) -> tuple[list[Any], _Graph]:
    if isinstance(document, list):
        nodes = [_compact(n) for n in document]
        return nodes, _Graph(nodes)
    if isinstance(document, dict):
        document = _compact(document)
        if isinstance(document.get("@graph"), list):
            nodes = document["@graph"]
            events = [n for n in nodes if isinstance(n, dict) and "LogisticsEvent" in _types(n)]
            return events, _Graph(nodes)
        return [document], _Graph([document])
    raise FormatError("a ONE Record document is a LogisticsEvent object, an array of them or an @graph")


def parse(data: bytes, source_name: str, *, carrier: str | None = None) -> ParseResult:
    document = load_json(data, source_name)
    events, graph = _events(document)
    builder = ResultBuilder()
    recorded = now_ms()
    for index, event in enumerate(events):
        reference = f"{source_name} event {index + 1}"
        raw = raw_json(event)
        if not isinstance(event, dict) or "LogisticsEvent" not in _types(event):
            builder.issue(reference, f"[{index}].@type", "not a LogisticsEvent", raw, "unsupported_record")
            continue
        problem = _scan(event, graph, carrier, recorded)
        if isinstance(problem, tuple):
            field, message, reason_code = problem
            builder.issue(reference, f"[{index}].{field}", message, raw, reason_code)
        else:
            builder.add("scan", problem, reference, raw)
    return builder.result


def _event_code(value: Any) -> str | None:
    value = _scalar(value)
    if isinstance(value, dict):
        code = _scalar(value.get("code"))
        if isinstance(code, str):
            return code.strip()
        value = value.get("@id")
    if isinstance(value, str):
        value = value.strip()
        if re.fullmatch(r"[A-Z]{3}", value):
            return value
        match = _CODE_AT_END.search(value)
        return match.group(1) if match else value
    return None


def _subject(linked: dict[str, Any]) -> tuple[str, dict[str, str | None]]:
    """(handling unit, references) of the logistics object an event is about."""
    prefix, number = _scalar(linked.get("waybillPrefix")), _scalar(linked.get("waybillNumber"))
    if prefix is not None or number is not None:
        awb = parse_awb(f"{prefix}-{number}")
        return awb, references(awb=awb)
    if linked.get("uldSerialNumber") is not None:
        uld = parse_uld(
            f"{_scalar(linked.get('uldTypeCode'))}{_scalar(linked['uldSerialNumber'])}{_scalar(linked.get('ownerCode'))}"
        )
        return uld, references(uld=uld)
    identifier = linked.get("@id")
    if not isinstance(identifier, str) or not identifier.strip():
        raise IdentifierError("the linked logistics object has no @id, AWB or ULD id")
    match = _AWB_AT_END.search(identifier)
    if match:
        awb = parse_awb(f"{match.group(1)}-{match.group(2)}")
        return awb, references(awb=awb)
    # Any other logistics object (a piece, a shipment): its id's last path segment, as a unit id.
    unit = identifier.strip().rstrip("/").rsplit("/", 1)[-1].upper()
    if not is_handling_unit(unit):
        raise IdentifierError(f"logistics object {identifier.strip()[:80]!r} has no usable id (AWB, ULD or unit id)")
    return unit, references()


def _location(value: Any) -> dict[str, str | None] | None:
    if not isinstance(value, dict):
        return None
    codes = value.get("locationCodes", value.get("code"))
    codes = codes if isinstance(codes, list) else [codes]
    for entry in codes:
        code = _scalar(entry.get("code")) if isinstance(entry, dict) else _scalar(entry)
        if isinstance(code, str) and code.strip():
            code = code.strip().upper()
            name = _scalar(value.get("locationName"))
            name = name if isinstance(name, str) else None
            if is_airport_code(code):
                airport = AIRPORTS.get(code)
                return location(code, "airport", airport.country if airport else None, name)
            if _LOCODE.match(code):
                return location(code, "locode", code[:2], name)
            return location(code, "facility", None, name)
    return None


def _scan(
    event: dict[str, Any], graph: _Graph, carrier: str | None, recorded: int
) -> dict[str, Any] | tuple[str, str, str]:
    raw_code = _event_code(event.get("eventCode"))
    if not raw_code:
        return "eventCode", "eventCode is missing", "malformed_record"
    code = normalise(RAW_FORMAT, raw_code)
    if code is None:
        return "eventCode", f"unknown ONE Record status code {raw_code!r}", "unknown_code"
    time_type = _scalar(event.get("eventTimeType"))
    time_type = _local(str(time_type.get("@id", "")) if isinstance(time_type, dict) else str(time_type or "ACTUAL"))
    if time_type.upper() != "ACTUAL":
        return "eventTimeType", f"eventTimeType {time_type}: only ACTUAL events are scans", "unsupported_record"
    event_date = _scalar(event.get("eventDate"))
    if event_date is None:
        return "eventDate", "eventDate is missing", "malformed_record"
    try:
        when = parse_timestamp(event_date)
    except IdentifierError as error:
        return "eventDate", str(error), "malformed_record"
    recorded_time = recorded
    creation = _scalar(event.get("creationDate"))
    if creation is not None:
        try:
            recorded_time = parse_timestamp(creation).epoch_ms
        except IdentifierError as error:
            return "creationDate", str(error), "malformed_record"
    linked_field = "eventFor" if "eventFor" in event else "linkedObject"
    linked = graph.resolve(event.get(linked_field))
    if not isinstance(linked, dict):
        return "eventFor", "the event is linked to no logistics object (eventFor / linkedObject)", "malformed_record"
    try:
        unit, refs = _subject(linked)
    except IdentifierError as error:
        return linked_field, str(error), "malformed_record"
    partial = _scalar(event.get("partialEventIndicator"))
    event_id = event.get("@id")
    if not isinstance(event_id, str) or not event_id.strip():
        event_id = content_id(RAW_FORMAT, event)
    return scan_event(
        event_id=event_id.strip(),
        source="flight",
        code=code,
        raw_code=raw_code,
        raw_format=RAW_FORMAT,
        carrier=carrier or (refs["awb"] or "")[:3] or "onerecord",
        event_time_ms=when.epoch_ms,
        utc_offset_minutes=when.utc_offset_minutes,
        recorded_time_ms=recorded_time,
        handling_unit=unit,
        location=_location(graph.resolve(event.get("eventLocation"))),
        refs=refs,
        reason="partial event: applies to part of the shipment" if partial is True else None,
    )
