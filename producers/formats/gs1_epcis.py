"""GS1 EPCIS 2.0 JSON / JSON-LD documents → ScanEvents and Manifests.

Accepted documents (docs/formats.md, "GS1 EPCIS 2.0"): an ``EPCISDocument`` (``epcisBody.eventList``),
an ``EPCISQueryDocument`` (``epcisBody.queryResults.resultsBody.eventList``), one event, or a JSON
array of events.

- ``ObjectEvent`` → one scan per EPC of ``epcList``: an SSCC (``urn:epc:id:sscc:...`` or a GS1
  Digital Link ``.../00/<SSCC>``) is a logistic unit, so its scan is a unit-level scan with the
  18-digit SSCC as handling unit; an SGTIN URN ``urn:epc:id:sgtin:<company>.<item>.<serial>`` is a
  parcel tracked as ``SGTIN<company><item><serial>``; any other EPC must be a plain tracking number
  (a parcel) or a handling-unit id (schemas/identifiers.py), else the event is refused with
  ``invalid_identifier``.
- ``AggregationEvent`` with action ``ADD`` / ``DELETE`` → a Manifest (``parentID`` = handling unit,
  ``childEPCs`` = members, action add / remove); with ``OBSERVE`` → a unit-level scan of the parent.
- ``bizStep`` in any of its forms (``sorting``, ``urn:epcglobal:cbv:bizstep:sorting``,
  ``https://ref.gs1.org/cbv/BizStep-sorting``) maps through ``code_maps.GS1_EPCIS_BIZSTEP``.
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
from typing import Any

from producers.formats.base import FormatError, ParseResult
from producers.formats.code_maps import normalise
from producers.formats.identifiers import (
    IdentifierError,
    is_valid_container,
    is_valid_gs1_key,
    parse_timestamp,
    parse_utc_offset,
    sscc_from_epc_urn,
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
_BIZSTEP_PREFIXES = ("urn:epcglobal:cbv:bizstep:", "https://ref.gs1.org/cbv/BizStep-", "cbv:BizStep-", "gs1:BizStep-")
_DIGITAL_LINK_SSCC = re.compile(r"^https?://[^/]+/00/(\d{18})$")
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
        try:
            records = _records(event, carrier or DEFAULT_CARRIER, recorded)
        except _EventError as problem:
            field = f"{path}.{problem.field}" if problem.field else path
            builder.issue(reference, field.lstrip("."), problem.message, raw, problem.reason_code)
            continue
        for kind, value in records:
            builder.add(kind, value, reference, raw)
    return builder.result


def _records(event: Any, carrier: str, recorded: int) -> list[tuple[str, dict[str, Any]]]:
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
        ids = [_epc(epc, f"epcList[{i}]") for i, epc in enumerate(epcs)]
        raw_code, code = _biz_step(event)
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
    members = [_epc(child, f"childEPCs[{i}]") for i, child in enumerate(children)]
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
    raw_code = value.strip()
    for prefix in _BIZSTEP_PREFIXES:
        if raw_code.startswith(prefix):
            raw_code = raw_code[len(prefix) :]
            break
    code = normalise(RAW_FORMAT, raw_code)
    if code is None:
        raise _EventError("bizStep", f"unknown bizStep {value.strip()!r}", "unknown_code")
    return raw_code, code


_SGTIN_URN = re.compile(r"urn:epc:id:sgtin:(\d+)\.(\d+)\.([A-Za-z0-9]+)")


def _epc(value: Any, field: str) -> tuple[str, bool]:
    """(identifier, is a logistic unit) of an EPC: SSCCs become their 18 digits."""
    if not isinstance(value, str) or not value.strip():
        raise _EventError(field, "an EPC is a non-empty string")
    epc = value.strip()
    if epc.startswith("urn:epc:id:sscc:"):
        try:
            return sscc_from_epc_urn(epc), True
        except IdentifierError as error:
            raise _EventError(field, str(error)) from None
    digital_link = _DIGITAL_LINK_SSCC.match(epc)
    if digital_link:
        if not is_valid_gs1_key(digital_link.group(1)):
            raise _EventError(field, f"SSCC {digital_link.group(1)} fails its GS1 check digit")
        return digital_link.group(1), True
    if is_valid_container(epc):
        return epc, True
    sgtin = _SGTIN_URN.fullmatch(epc)
    tracking_number = "SGTIN" + "".join(sgtin.groups()).upper() if sgtin else epc
    if is_tracking_number(tracking_number):
        return tracking_number, False
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
