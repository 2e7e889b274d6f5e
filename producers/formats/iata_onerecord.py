"""IATA ONE Record ``LogisticsEvent`` (JSON-LD) → unit-level ScanEvents.

Accepted documents (docs/formats.md, "IATA ONE Record"): one event object, a JSON array of them, a
JSON-LD document with ``@graph`` (nodes of other types in the graph are used to resolve ``@id``
references, e.g. the linked Waybill or the event Location), or a server's event list (an
``api:Collection`` whose ``api:hasItem`` holds the events, what GET ``/logistics-events`` returns).
Events are ``LogisticsEvent`` or its subtype ``StatusUpdateEvent`` (IATA's XFSU mapping). Property
names may be plain (``eventCode``, with an ``@vocab`` context), prefixed (``cargo:eventCode``) or full
IRIs; values may be plain or typed literals ``{"@value": ..., "@type": ...}`` (``"true"`` of an
``xsd:boolean`` is true). Per event:

- ``eventCode``: a string (``DEP``), a CodeListElement (``{"code": "DEP"}``) or a code list IRI
  ending in the code; mapped through the IATA status code table.
- ``eventDate``: ISO 8601 with an offset. ``creationDate`` (when present) is the recorded time.
- ``eventFor`` (ONE Record 3.x) or ``linkedObject`` (API 2.x): the logistics object the event is
  about; a list of objects gives one scan per object. Without either, the object the event's own
  ``@id`` names (``<object>/logistics-events/<id>``). Its AWB (``waybillPrefix`` + ``waybillNumber``,
  the same on the Waybill its ``waybill`` links to, or an ``@id`` ending in ``157-12345675`` /
  ``15712345675``) becomes the handling unit; a ULD (``uldTypeCode`` + ``uldSerialNumber`` +
  ``ownerCode``) its ULD id; anything else is identified by its ``@id``'s last path segment.
- ``recordedAtLocation`` (3.x) or ``eventLocation``: ``locationCodes[].code``, ``locationCode.code``
  or ``code``: an IATA airport, UN/LOCODE or facility; a location given only by its ``@id`` is the
  airport its last path segment names, when that is a known IATA code.
- ``eventTimeType``: only ``ACTUAL`` (the default) events are scans; planned or estimated ones are
  reported as ``unsupported_record``. ``partialEventIndicator`` true is kept in ``reason``.
- ``@id``: the event id (events are immutable, so the IRI identifies the event), suffixed
  ``|<unit>`` when the event is for several objects; without one, a hash of the event's content.
"""

from __future__ import annotations

import re
from typing import Any, Final

from producers.formats.airports import airport
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
#: Event types: the LogisticsEvent and its subtype of IATA's XFSU mapping.
EVENT_TYPES: Final = frozenset({"LogisticsEvent", "StatusUpdateEvent"})
_EVENTS_PATH = "/logistics-events/"
_AWB_AT_END = re.compile(r"(\d{3})-?(\d{8})/?$")
_CODE_AT_END = re.compile(r"([A-Z]{3})$")
_LOCODE = re.compile(r"^[A-Z]{2}[A-Z2-9]{3}$")

Problem = tuple[str, str, str]  # (field, message, reason code)


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


def _boolean(value: Any) -> bool:
    """An xsd:boolean, plain (``true``) or a typed literal's lexical form (``"true"``, ``"1"``)."""
    value = _scalar(value)
    return value is True or (isinstance(value, str) and value.strip().lower() in ("true", "1"))


def _listed(value: Any) -> list[Any]:
    """A JSON-LD property's values: one value or a list (``@list`` / ``@set`` objects too)."""
    if isinstance(value, dict):
        inner = value.get("@list", value.get("@set"))
        if isinstance(inner, list):
            return inner
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _types(node: dict[str, Any]) -> set[str]:
    declared = node.get("@type", [])
    return {_local(str(t)) for t in (declared if isinstance(declared, list) else [declared])}


def _is_event(node: Any) -> bool:
    return isinstance(node, dict) and bool(EVENT_TYPES & _types(node))


def _is_collection(node: Any) -> bool:
    return isinstance(node, dict) and "Collection" in _types(node)


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
        return _with_collection_items(nodes), _Graph(nodes)
    if isinstance(document, dict):
        document = _compact(document)
        if isinstance(document.get("@graph"), list):
            nodes = document["@graph"]
            graph = _Graph(nodes)
            events = [n for n in nodes if _is_event(n)]
            events += [graph.resolve(item) for n in nodes if _is_collection(n) for item in _listed(n.get("hasItem"))]
            return events, graph
        if _is_collection(document):
            items = _listed(document.get("hasItem"))
            return items, _Graph(items)
        return [document], _Graph([document])
    raise FormatError("a ONE Record document is an event object, an array of them, an @graph or an api:Collection")


def _with_collection_items(nodes: list[Any]) -> list[Any]:
    """A top-level array's nodes, each collection replaced by its items."""
    events: list[Any] = []
    for node in nodes:
        events.extend(_listed(node.get("hasItem")) if _is_collection(node) else [node])
    return events


def parse(data: bytes, source_name: str, *, carrier: str | None = None) -> ParseResult:
    document = load_json(data, source_name)
    events, graph = _events(document)
    builder = ResultBuilder()
    recorded = now_ms()
    for index, event in enumerate(events):
        reference = f"{source_name} event {index + 1}"
        raw = raw_json(event)
        if not _is_event(event):
            message = f"not an event ({' or '.join(sorted(EVENT_TYPES))})"
            builder.issue(reference, f"[{index}].@type", message, raw, "unsupported_record")
            continue
        scans = _scans(event, graph, carrier, recorded)
        if isinstance(scans, tuple):
            scans = [scans]
        for scan in scans:
            if isinstance(scan, tuple):
                field, message, reason_code = scan
                builder.issue(reference, f"[{index}].{field}", message, raw, reason_code)
            else:
                builder.add("scan", scan, reference, raw)
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


def _awb_of(node: dict[str, Any]) -> str | None:
    prefix, number = _scalar(node.get("waybillPrefix")), _scalar(node.get("waybillNumber"))
    if prefix is None and number is None:
        return None
    return parse_awb(f"{prefix}-{number}")


def _subject(linked: dict[str, Any], graph: _Graph) -> tuple[str, dict[str, str | None]]:
    """(handling unit, references) of the logistics object an event is about."""
    awb = _awb_of(linked)
    if awb is None:
        # A Shipment carries its AWB on the Waybill it links to.
        waybill = graph.resolve(linked.get("waybill"))
        awb = _awb_of(waybill) if isinstance(waybill, dict) else None
    if awb is not None:
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
    name = _scalar(value.get("locationName"))
    name = name if isinstance(name, str) else None
    for entry in _listed(value.get("locationCodes", value.get("locationCode", value.get("code")))):
        code = _scalar(entry.get("code")) if isinstance(entry, dict) else _scalar(entry)
        if isinstance(code, str) and code.strip():
            code = code.strip().upper()
            if is_airport_code(code):
                known = airport(code)
                return location(code, "airport", known.country if known else None, name)
            if _LOCODE.match(code):
                return location(code, "locode", code[:2], name)
            return location(code, "facility", None, name)
    # Only a link: an airport when its last path segment is a known IATA code (…/locations/FRA).
    identifier = value.get("@id")
    if isinstance(identifier, str):
        segment = identifier.strip().rstrip("/").rsplit("/", 1)[-1].rsplit("#", 1)[-1].upper()
        known = airport(segment) if is_airport_code(segment) else None
        if known is not None:
            return location(known.code, "airport", known.country, name or known.name)
    return None


def _linked_objects(event: dict[str, Any], graph: _Graph) -> tuple[str, list[Any]]:
    """(field, the logistics objects) an event is for: ``eventFor`` / ``linkedObject`` (one or a
    list), else the object its ``@id`` is filed under (``<object>/logistics-events/<id>``)."""
    for field in ("eventFor", "linkedObject"):
        if field in event:
            return field, [graph.resolve(item) for item in _listed(event[field])]
    identifier = event.get("@id")
    if isinstance(identifier, str) and _EVENTS_PATH in identifier:
        owner = identifier.strip().rsplit(_EVENTS_PATH, 1)[0]
        return "@id", [graph.resolve({"@id": owner})]
    return "eventFor", []


def _scans(
    event: dict[str, Any], graph: _Graph, carrier: str | None, recorded: int
) -> list[dict[str, Any] | Problem] | Problem:
    """One scan per logistics object of the event (or that object's problem), or the event's problem."""
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
    linked_field, linked_objects = _linked_objects(event, graph)
    if not linked_objects or not all(isinstance(linked, dict) for linked in linked_objects):
        return "eventFor", "the event is linked to no logistics object (eventFor / linkedObject)", "malformed_record"
    event_id = event.get("@id")
    event_id = event_id.strip() if isinstance(event_id, str) and event_id.strip() else content_id(RAW_FORMAT, event)
    place = _location(graph.resolve(event.get("recordedAtLocation", event.get("eventLocation"))))
    reason = "partial event: applies to part of the shipment" if _boolean(event.get("partialEventIndicator")) else None
    several = len(linked_objects) > 1
    scans: list[dict[str, Any] | Problem] = []
    for number, linked in enumerate(linked_objects):
        try:
            unit, refs = _subject(linked, graph)
        except IdentifierError as error:
            scans.append((f"{linked_field}[{number}]" if several else linked_field, str(error), "malformed_record"))
            continue
        scans.append(
            scan_event(
                event_id=f"{event_id}|{unit}" if several else event_id,
                source="flight",
                code=code,
                raw_code=raw_code,
                raw_format=RAW_FORMAT,
                carrier=carrier or (refs["awb"] or "")[:3] or "onerecord",
                event_time_ms=when.epoch_ms,
                utc_offset_minutes=when.utc_offset_minutes,
                recorded_time_ms=recorded_time,
                handling_unit=unit,
                location=place,
                refs=refs,
                reason=reason,
            )
        )
    return scans
