"""GS1 EPCIS 2.0 JSON / JSON-LD documents → ScanEvents and Manifests.

Accepted documents (docs/formats.md, "GS1 EPCIS 2.0"): an ``EPCISDocument`` (``epcisBody.eventList``),
an ``EPCISQueryDocument`` (``epcisBody.queryResults.resultsBody.eventList``), one event, or a JSON
array of events. The event type is ``type``, ``@type`` or ``isA``.

- EPCs: EPC URNs are read with ``epcpy`` (GS1 Tag Data Standard), GS1 Digital Links
  (``https://<any resolver>/00/<SSCC>``, ``.../01/<GTIN>/21/<serial>``, query string allowed) with
  ``biip``. An SSCC is a logistic unit: its scan is a unit-level scan with the 18-digit SSCC as
  handling unit. An SGTIN (GTIN + serial, with any serial characters GS1 allows in AI 21) is a
  parcel tracked as ``SGTIN<GTIN-14><serial>``, the serial upper-cased and stripped of characters
  other than letters and digits. Any other EPC must be an ISO 6346 container number, a plain
  tracking number (a parcel) or a handling-unit id (schemas/identifiers.py). Other GS1 keys (GRAI,
  GIAI, SGLN, a GTIN without serial...) are reported for that EPC as ``unsupported_record``,
  malformed EPCs as ``invalid_identifier``; the event's other EPCs are kept.
- ``ObjectEvent`` → one scan per EPC of ``epcList``.
- ``AggregationEvent`` with action ``ADD`` / ``DELETE`` → a Manifest (``parentID`` = handling unit,
  ``childEPCs`` = members, action add / remove); with ``OBSERVE`` → a unit-level scan of the parent.
- ``bizStep`` in any of its forms (``sorting``, ``urn:epcglobal:cbv:bizstep:sorting``,
  ``https://ref.gs1.org/cbv/BizStep-sorting``, ``cbv:BizStep-sorting``, ``gs1:BizStep-sorting``)
  maps through ``code_maps.GS1_EPCIS_BIZSTEP``; a CBV step that is no parcel movement (``installing``,
  ``retail_selling``...) is ``unsupported_record``; a step outside the CBV ``unknown_code``.
  ``shipping`` depends on the event's destination (``destinationList``): handed to a possessing
  party or a location → the hub's handover to the last mile (``LASTMILE_HANDOVER``); no
  destination, or an owning party (a sale) → the sender's dispatch at the start of the chain
  (``ORIGIN_SORTED``).
- ``eventTime`` (with its offset) is the event time; ``eventTimeZoneOffset`` the local offset kept
  for display; ``recordTime`` (when present) the recorded time.
- Location: ``bizLocation.id``, else ``readPoint.id`` (SGLN URN or Digital Link), as a facility.
- Ids: ``eventID`` (suffixed ``|<EPC>`` when one event yields several scans); without one, a hash
  of the event's content.

Other event types, class-level events (``quantityList`` only) and error declarations are reported
as ``unsupported_record``.
"""

from __future__ import annotations

import re
from typing import Any, Final
from urllib.parse import unquote

import epcpy
from biip import ParseError as BiipParseError
from biip.gs1_digital_link_uris import GS1DigitalLinkURI

from producers.formats.base import FormatError, ParseResult
from producers.formats.code_maps import normalise
from producers.formats.identifiers import (
    IdentifierError,
    is_valid_container,
    is_valid_gs1_key,
    parse_timestamp,
    parse_utc_offset,
)
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
from schemas.identifiers import is_handling_unit, is_tracking_number

RAW_FORMAT = "gs1-epcis"
DEFAULT_CARRIER = "epcis"
#: Every CBV 2.0 business step; those missing from code_maps.GS1_EPCIS_BIZSTEP move no parcel.
CBV_BIZ_STEPS: Final = frozenset(
    {
        "accepting", "arriving", "assembling", "collecting", "commissioning", "consigning",
        "creating_class_instance", "cycle_counting", "decommissioning", "departing", "destroying",
        "disassembling", "dispensing", "encoding", "entering_exiting", "holding", "inspecting", "installing",
        "killing", "loading", "other", "packing", "picking", "receiving", "removing", "repackaging",
        "repairing", "replacing", "reserving", "retail_selling", "sampling", "sensor_reporting", "shipping",
        "sorting", "staging_outbound", "stock_taking", "stocking", "storing", "transporting", "unloading",
        "unpacking", "void_shipping",
    }
)  # fmt: skip
#: ``shipping`` hands the goods to someone: custody (a carrier, a place) or ownership (a sale).
_HANDOVER_DESTINATIONS: Final = frozenset({"possessing_party", "location"})
_BIZSTEP_FORM = re.compile(r"^(?:.*[:/#])?(?:BizStep-|bizstep:)?([A-Za-z_]+)$")
_EVENT_TYPES = ("ObjectEvent", "AggregationEvent", "TransactionEvent", "TransformationEvent", "AssociationEvent")


class _EventError(Exception):
    """A bad event: the field path, what is wrong, and the reason code."""

    def __init__(self, field: str, message: str, reason_code: str = "malformed_record") -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.reason_code = reason_code


def _event_list(document: Any) -> tuple[str, list[Any]]:
    """(field path of the list, events) of any accepted document shape."""
    if isinstance(document, list):
        return "", document
    if not isinstance(document, dict):
        raise FormatError("an EPCIS document is a JSON object (EPCISDocument) or an array of events")
    if _event_type(document) in _EVENT_TYPES:
        return "", [document]
    body = document.get("epcisBody")
    if isinstance(body, dict):
        if isinstance(body.get("eventList"), list):
            return "epcisBody.eventList", body["eventList"]
        results = body.get("queryResults")
        if isinstance(results, dict) and isinstance(results.get("resultsBody"), dict):
            events = results["resultsBody"].get("eventList")
            if isinstance(events, list):
                return "epcisBody.queryResults.resultsBody.eventList", events
    raise FormatError("no epcisBody.eventList: not an EPCIS 2.0 document")


def _event_type(event: dict[str, Any]) -> str | None:
    for key in ("type", "@type", "isA"):
        if isinstance(event.get(key), str):
            return event[key]
    return None


def parse(data: bytes, source_name: str, *, carrier: str | None = None) -> ParseResult:
    list_path, events = _event_list(load_json(data, source_name))
    builder = ResultBuilder()
    recorded = now_ms()
    for index, event in enumerate(events):
        reference = f"{source_name} event {index + 1}"
        path = f"{list_path}[{index}]"
        raw = raw_json(event)
        skipped: list[_EventError] = []  # EPCs of the event that are refused while the others are kept
        try:
            records = _records(event, carrier or DEFAULT_CARRIER, recorded, skipped)
        except _EventError as problem:
            skipped.append(problem)
            records = []
        for problem in skipped:
            field = f"{path}.{problem.field}" if problem.field else path
            builder.issue(reference, field.lstrip("."), problem.message, raw, problem.reason_code)
        for kind, value in records:
            builder.add(kind, value, reference, raw)
    return builder.result


def _records(event: Any, carrier: str, recorded: int, skipped: list[_EventError]) -> list[tuple[str, dict[str, Any]]]:
    if not isinstance(event, dict):
        raise _EventError("", "an event is a JSON object")
    event_type = _event_type(event)
    if event_type not in ("ObjectEvent", "AggregationEvent"):
        raise _EventError(
            "type", f"event type {event_type!r} is not supported (ObjectEvent, AggregationEvent)", "unsupported_record"
        )
    if event.get("errorDeclaration") is not None:
        raise _EventError(
            "errorDeclaration", "error declarations (retractions) are not supported", "unsupported_record"
        )
    action = event.get("action")
    if action not in ("ADD", "OBSERVE", "DELETE"):
        raise _EventError("action", f"action {action!r} is not ADD, OBSERVE or DELETE")
    when = _when(event)
    recorded_time = recorded
    if event.get("recordTime") is not None:
        try:
            recorded_time = parse_timestamp(event["recordTime"]).epoch_ms
        except IdentifierError as error:
            raise _EventError("recordTime", str(error)) from None
    event_id = event.get("eventID")
    base_id = event_id.strip() if isinstance(event_id, str) and event_id.strip() else content_id(RAW_FORMAT, event)
    common = {"carrier": carrier, "when": when, "recorded": recorded_time, "place": _location(event)}
    if event_type == "ObjectEvent":
        epcs = event.get("epcList")
        if not isinstance(epcs, list) or not epcs:
            raise _EventError(
                "epcList", "no epcList: class-level events (quantityList only) are not supported", "unsupported_record"
            )
        raw_code, code = _biz_step(event)
        ids = _usable_epcs(epcs, "epcList", skipped)
        return [
            (
                "scan",
                _scan(epc_id, is_unit, base_id if len(ids) == 1 else f"{base_id}|{epc_id}", raw_code, code, **common),
            )
            for epc_id, is_unit in ids
        ]
    parent, _parent_is_unit = _epc(event.get("parentID"), "parentID")
    if action == "OBSERVE":
        raw_code, code = _biz_step(event)
        return [("scan", _scan(parent, True, base_id, raw_code, code, **common))]
    children = event.get("childEPCs")
    if not isinstance(children, list) or not children:
        raise _EventError("childEPCs", f"an {action} aggregation must list its childEPCs")
    members = _usable_epcs(children, "childEPCs", skipped)
    if not members:
        return []
    return [("manifest", _manifest(parent, members, action, base_id, carrier, when.epoch_ms, recorded_time))]


def _when(event: dict[str, Any]) -> Any:
    if event.get("eventTime") is None:
        raise _EventError("eventTime", "eventTime is missing")
    try:
        when = parse_timestamp(event["eventTime"])
    except IdentifierError as error:
        raise _EventError("eventTime", str(error)) from None
    if event.get("eventTimeZoneOffset") is not None:
        try:
            offset = parse_utc_offset(event["eventTimeZoneOffset"])
        except IdentifierError as error:
            raise _EventError("eventTimeZoneOffset", str(error)) from None
        when = type(when)(when.epoch_ms, offset)
    return when


def _biz_step(event: dict[str, Any]) -> tuple[str, str]:
    value = event.get("bizStep")
    if not isinstance(value, str) or not value.strip():
        raise _EventError("bizStep", "bizStep is missing: it says what happened")
    form = _BIZSTEP_FORM.match(value.strip())
    raw_code = form.group(1).lower() if form else value.strip()
    if raw_code not in CBV_BIZ_STEPS:
        raise _EventError("bizStep", f"unknown bizStep {value.strip()!r} (not a CBV 2.0 business step)", "unknown_code")
    if raw_code == "shipping":
        return raw_code, _shipping_code(event)
    code = normalise(RAW_FORMAT, raw_code)
    if code is None:
        raise _EventError(
            "bizStep", f"bizStep {raw_code!r} is no parcel movement parcelstream tracks", "unsupported_record"
        )
    return raw_code, code


def _shipping_code(event: dict[str, Any]) -> str:
    """``shipping`` by its destination: custody handed to a party or place → the last-mile handover;
    none (or only a new owner: a sale) → the sender's dispatch at the start of the chain."""
    destinations = event.get("destinationList")
    types = set()
    for entry in destinations if isinstance(destinations, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("type"), str):
            types.add(entry["type"].strip().rsplit(":", 1)[-1].rsplit("-", 1)[-1].rsplit("/", 1)[-1])
    return "LASTMILE_HANDOVER" if types & _HANDOVER_DESTINATIONS else "ORIGIN_SORTED"


def _usable_epcs(values: list[Any], field: str, skipped: list[_EventError]) -> list[tuple[str, bool]]:
    """The EPCs of a list that identify a parcel or unit; each other one is reported in ``skipped``."""
    usable = []
    for index, value in enumerate(values):
        try:
            usable.append(_epc(value, f"{field}[{index}]"))
        except _EventError as problem:
            skipped.append(problem)
    return usable


def _sgtin_tracking_number(gtin: str, serial: str) -> str | None:
    """``SGTIN<GTIN-14><serial>``: the serial upper-cased, characters other than letters and digits
    dropped (tracking numbers are A-Z 0-9); None when nothing of the serial is left."""
    kept = re.sub(r"[^A-Z0-9]", "", serial.upper())
    return f"SGTIN{gtin.zfill(14)}{kept}" if kept else None


def _gs1_identifier(elements: dict[str, str], field: str, epc: str) -> tuple[str, bool]:
    """(identifier, is a unit) of GS1 element strings (AI → value) of one EPC."""
    if "00" in elements:
        sscc = elements["00"]
        if not (len(sscc) == 18 and is_valid_gs1_key(sscc)):
            raise _EventError(field, f"SSCC {sscc} is not 18 digits with a valid GS1 check digit", "invalid_identifier")
        return sscc, True
    if "01" in elements and "21" in elements:
        gtin = elements["01"]
        if not (gtin.isdigit() and len(gtin) in (8, 12, 13, 14) and is_valid_gs1_key(gtin)):
            raise _EventError(field, f"GTIN {gtin} fails its GS1 check digit", "invalid_identifier")
        tracking_number = _sgtin_tracking_number(gtin, elements["21"])
        if tracking_number is None:
            raise _EventError(field, f"SGTIN serial {elements['21']!r} has no letter or digit", "invalid_identifier")
        return tracking_number, False
    keys = ", ".join(f"AI {ai}" for ai in elements)
    raise _EventError(
        field, f"EPC {epc[:80]!r} ({keys}) is neither an SSCC nor an SGTIN: not a parcel or unit", "unsupported_record"
    )


def _epc(value: Any, field: str) -> tuple[str, bool]:
    """(identifier, is a logistic unit) of an EPC: SSCCs become their 18 digits."""
    if not isinstance(value, str) or not value.strip():
        raise _EventError(field, "an EPC is a non-empty string")
    epc = value.strip()
    if epc.startswith("urn:epc:id:"):
        try:
            element_string = epcpy.epc_pure_identity_to_gs1_element_string(epc)
        except (epcpy.ConvertException, ValueError, LookupError, TypeError):
            if epc.startswith(("urn:epc:id:sscc:", "urn:epc:id:sgtin:")):
                raise _EventError(field, f"{epc[:80]!r} is not a valid EPC URN (GS1 Tag Data Standard)") from None
            scheme = epc.split(":")[3] if epc.count(":") >= 4 else "?"
            raise _EventError(
                field,
                f"EPC {epc[:80]!r} ({scheme}) is neither an SSCC nor an SGTIN: not a parcel or unit",
                "unsupported_record",
            ) from None
        elements = dict(re.findall(r"\((\d{2,4})\)([^(]*)", element_string))
        return _gs1_identifier(elements, field, epc)
    if epc.startswith(("https://", "http://")):
        try:
            link = GS1DigitalLinkURI.parse(epc)
        except (BiipParseError, ValueError):
            raise _EventError(field, f"{epc[:80]!r} is not a GS1 Digital Link URI", "invalid_identifier") from None
        elements = {element.ai.ai: unquote(element.value) for element in link.element_strings}
        return _gs1_identifier(elements, field, epc)
    if is_valid_container(epc):
        return epc, True
    if is_tracking_number(epc):
        return epc, False
    if is_handling_unit(epc):
        return epc, True
    raise _EventError(
        field, f"EPC {epc[:60]!r} is neither an SSCC, an SGTIN, a tracking number nor a unit id", "invalid_identifier"
    )


def _location(event: dict[str, Any]) -> dict[str, str | None] | None:
    for key in ("bizLocation", "readPoint"):
        place = event.get(key)
        if isinstance(place, dict) and isinstance(place.get("id"), str) and place["id"].strip():
            return location(place["id"].strip())
    return None


def _unit_references(unit: str) -> dict[str, str | None]:
    return references(container=unit) if is_valid_container(unit) else references(bag=unit)


def _scan(
    epc: str,
    is_unit: bool,
    event_id: str,
    raw_code: str,
    code: str,
    *,
    carrier: str,
    when: Any,
    recorded: int,
    place: Any,
) -> dict[str, Any]:
    return scan_event(
        event_id=event_id,
        source="warehouse",
        code=code,
        raw_code=raw_code,
        raw_format=RAW_FORMAT,
        carrier=carrier,
        event_time_ms=when.epoch_ms,
        utc_offset_minutes=when.utc_offset_minutes,
        recorded_time_ms=recorded,
        tracking_number=None if is_unit else epc,
        handling_unit=epc if is_unit else None,
        location=place,
        refs=_unit_references(epc) if is_unit else references(),
    )


def _manifest(
    parent: str,
    members: list[tuple[str, bool]],
    action: str,
    manifest_id: str,
    carrier: str,
    event_time_ms: int,
    recorded: int,
) -> dict[str, Any]:
    # Children that are logistic units (SSCCs) are bags in a ULD or container; others are parcels.
    members_are_units = all(is_unit for _, is_unit in members)
    unit_type = "container" if is_valid_container(parent) else "uld" if members_are_units else "bag"
    return {
        "manifest_id": manifest_id,
        "handling_unit": parent,
        "unit_type": unit_type,
        "action": "add" if action == "ADD" else "remove",
        "members": [member for member, _ in members],
        "member_type": "bag" if members_are_units else "parcel",
        "carrier": carrier,
        "source": "warehouse",
        "event_time_ms": event_time_ms,
        "recorded_time_ms": recorded,
        "references": _unit_references(parent),
    }
