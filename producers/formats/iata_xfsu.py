"""IATA Cargo-XML XFSU (status message) → unit-level ScanEvents per AWB, the same scans as the
Cargo-IMP FSU parser (``producers.formats.iata_fsu``) gives for the equivalent FSU text.

Accepted syntax (docs/formats.md, "IATA Cargo-XML XFSU"): one XML document, root ``StatusMessage``
in namespace ``iata:statusmessage:1``, data elements in ``iata:datamodel:3`` (any prefixes, or the
default namespace; other version numbers are accepted too). Of the Cargo-XML 3 schema it reads::

    StatusMessage
      MasterConsignment
        PieceQuantity, TotalPieceQuantity           total pieces, for a part shipment's "of n"
        TransportContractDocument/ID                the AWB, 020-12345675 (mod-7 check digit)
        OriginLocation/ID, FinalDestinationLocation/ID
        ReportedStatus (one or more)
          ReasonCode                                the status code: DEP, RCS, ... (code_maps.IATA_FSU)
          AssociatedStatusConsignment (one or more) one scan each
            GrossWeightMeasure @unitCode, PieceQuantity, TransportSplitDescription (P = part),
            DiscrepancyDescriptionCode
            SpecifiedLogisticsTransportMovement     the first one:
              ID                                    flight
              ArrivalEvent/ArrivalOccurrenceDateTime, DepartureEvent/DepartureOccurrenceDateTime
              SpecifiedLocation/ID                  airport, or two: the airport pair
              SpecifiedEvent/OccurrenceDateTime     when the status happened

The rules are the FSU's: the airport pair's origin for BKD, RCS, MAN, DEP, FOH, TFD, its
destination otherwise; without a location the AWB's origin / destination likewise; a time without
a UTC offset is local at that airport (``producers.formats.airports``).

The document is read with defusedxml and no DTD is allowed, so entity expansion ("billion laughs")
and external entities cannot happen; documents over ``MAX_DOCUMENT_BYTES`` or nested deeper than
``MAX_DEPTH`` elements are refused before anything else is done with them.
"""

from __future__ import annotations

import io
import re
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Final
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

from defusedxml import DefusedXmlException, DTDForbidden
from defusedxml.ElementTree import iterparse

from producers.formats.base import FormatError, ParseResult
from producers.formats.iata_fsu import AT_DEPARTURE_AIRPORT, Pieces, StatusFields, status_reason
from producers.formats.identifiers import IdentifierError, known_airport, parse_awb, timestamp_of
from producers.formats.records import ResultBuilder, content_id, location, now_ms, references, scan_event

RAW_FORMAT: Final = "iata-xfsu"
#: One XFSU is one shipment's status message, a few kB; anything near this is not an XFSU.
MAX_DOCUMENT_BYTES: Final = 1_000_000
#: The Cargo-XML status message is about ten elements deep; deeper nesting is refused.
MAX_DEPTH: Final = 32
ROOT_NAME: Final = "StatusMessage"
_STATUS_NAMESPACE = re.compile(r"^iata:statusmessage:\d+$")
_DATA_NAMESPACE = re.compile(r"^iata:datamodel:\d+$")
_TAG = re.compile(r"^(?:\{([^}]*)\})?(.+)$")
_WHOLE_NUMBER = re.compile(r"^\d{1,6}$")
#: UN/ECE Rec. 20 weight units → the Cargo-IMP weight codes the FSU parser keeps in ``reason``.
_WEIGHT_CODES: Final = {"KGM": "K", "LBR": "L"}
_MOVEMENT: Final = "SpecifiedLogisticsTransportMovement"


def read_document(data: bytes, source_name: str) -> ElementTree.Element:
    """The root element of an XFSU document; FormatError when it is too big, not safe to read,
    not well-formed, or not a Cargo-XML StatusMessage."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise FormatError(
            f"{source_name}: {len(data)} bytes is over the {MAX_DOCUMENT_BYTES} bytes an XFSU document may have"
        )
    root: ElementTree.Element | None = None
    depth = 0
    try:
        for event, element in iterparse(io.BytesIO(data), events=("start", "end"), forbid_dtd=True):
            if event == "end":
                depth -= 1
                continue
            depth += 1
            if depth > MAX_DEPTH:
                raise FormatError(f"{source_name}: XML nested deeper than {MAX_DEPTH} elements; not an XFSU")
            if root is None:
                root = element
    except FormatError:
        raise
    except DTDForbidden:
        raise FormatError(
            f"{source_name}: XML with a document type declaration (DTD) is refused: its entities could "
            "expand without bound (XML bomb) or read other files; Cargo-XML needs no DTD"
        ) from None
    except DefusedXmlException as error:
        raise FormatError(f"{source_name}: unsafe XML refused ({type(error).__name__})") from None
    except ElementTree.ParseError as error:
        raise FormatError(f"{source_name}: not well-formed XML: {error}") from None
    except (LookupError, ValueError) as error:  # an unknown or unsupported declared encoding
        raise FormatError(f"{source_name}: unreadable XML: {error}") from None
    if root is None:  # iterparse raises on a document without elements; kept for the type checker
        raise FormatError(f"{source_name}: no XML element")
    namespace, name = _split_tag(root.tag)
    if name != ROOT_NAME or not _STATUS_NAMESPACE.match(namespace):
        found = f"{{{namespace}}}{name}" if namespace else name
        raise FormatError(
            f"{source_name}: root element is {found}; an XFSU's root is StatusMessage in namespace "
            "iata:statusmessage:1 (not a Cargo-XML status message)"
        )
    return root


def parse(data: bytes, source_name: str, *, carrier: str | None = None) -> ParseResult:
    """Parse a Cargo-XML XFSU status message: one scan per status of the AWB."""
    root = read_document(data, source_name)
    builder = ResultBuilder()
    message_reference = f"{source_name} (XFSU message)"
    consignment = _child(root, "MasterConsignment")
    if consignment is None:
        builder.issue(message_reference, "MasterConsignment", "status message has no MasterConsignment", data)
        return builder.result
    awb_text = _text(consignment, "TransportContractDocument", "ID")
    if awb_text is None:
        message = "MasterConsignment has no TransportContractDocument/ID (the AWB number)"
        builder.issue(message_reference, "TransportContractDocument.ID", message, data)
        return builder.result
    try:
        awb = parse_awb(awb_text)
    except IdentifierError as error:
        builder.issue(message_reference, "TransportContractDocument.ID", str(error), data)
        return builder.result
    shipment = _Shipment(
        awb=awb,
        origin=_text(consignment, "OriginLocation", "ID"),
        destination=_text(consignment, "FinalDestinationLocation", "ID"),
        total_pieces=_whole_number(_text(consignment, "TotalPieceQuantity") or _text(consignment, "PieceQuantity")),
    )
    statuses = _children(consignment, "ReportedStatus")
    if not statuses:
        builder.issue(message_reference, "ReportedStatus", "MasterConsignment has no ReportedStatus", data)
    recorded = now_ms()
    for index, status in enumerate(statuses):
        _parse_status(status, index, shipment, source_name, carrier, recorded, builder)
    return builder.result


@dataclass(frozen=True)
class _Shipment:
    awb: str
    origin: str | None
    destination: str | None
    total_pieces: int | None


@dataclass(frozen=True)
class StatusDetails:
    """What one AssociatedStatusConsignment says, in the FSU parser's terms."""

    fields: StatusFields  # flight, airports, pieces, discrepancy (day and time stay None)
    moment: str | None  # xs:dateTime of the status
    moment_path: str  # where ``moment`` came from, for issues


def read_status_consignment(element: ElementTree.Element, raw_code: str) -> StatusDetails:
    """Flight, airports, time, pieces and discrepancy of an AssociatedStatusConsignment."""
    movement = _child(element, _MOVEMENT)
    flight: str | None = None
    airports: tuple[str, ...] = ()
    moment: str | None = None
    moment_path = f"{_MOVEMENT}.SpecifiedEvent.OccurrenceDateTime"
    if movement is not None:
        flight = _text(movement, "ID")
        codes = [_text(place, "ID") for place in _children(movement, "SpecifiedLocation")]
        airports = tuple(code for code in codes if code)[:2]
        moment = _text(movement, "SpecifiedEvent", "OccurrenceDateTime")
        if moment is None:
            # No status time of its own: the flight's departure (or arrival) time, by the status's side.
            event, field = (
                ("DepartureEvent", "DepartureOccurrenceDateTime")
                if raw_code in AT_DEPARTURE_AIRPORT
                else ("ArrivalEvent", "ArrivalOccurrenceDateTime")
            )
            if (moment := _text(movement, event, field)) is not None:
                moment_path = f"{_MOVEMENT}.{event}.{field}"
    count = _whole_number(_text(element, "PieceQuantity"))
    pieces = None
    if count is not None:
        weight_element = _child(element, "GrossWeightMeasure")
        weight = _text(element, "GrossWeightMeasure")
        unit = (weight_element.get("unitCode") or "").strip() if weight_element is not None else ""
        part = _text(element, "TransportSplitDescription") == "P"
        pieces = Pieces(part, count, f"{weight} {_WEIGHT_CODES.get(unit, unit)}".strip() if weight else None, None)
    fields = StatusFields(
        flight=flight,
        airports=airports,
        pieces=pieces,
        discrepancy=_text(element, "DiscrepancyDescriptionCode"),
    )
    return StatusDetails(fields, moment, moment_path)


def status_time(moment: str, time_zone: str) -> datetime:
    """An xs:dateTime; without a UTC offset it is local time at the status's airport."""
    try:
        parsed = datetime.fromisoformat(moment)
    except ValueError:
        raise IdentifierError(f"{moment!r} is not an xs:dateTime like 2024-10-16T14:30:00") from None
    return parsed if parsed.utcoffset() is not None else parsed.replace(tzinfo=ZoneInfo(time_zone))


def _parse_status(
    status: ElementTree.Element,
    index: int,
    shipment: _Shipment,
    source_name: str,
    carrier: str | None,
    recorded: int,
    builder: ResultBuilder,
) -> None:
    reference = f"{source_name} status {index + 1}"
    path = f"ReportedStatus[{index}]"
    raw = _element_bytes(status)
    raw_code = _text(status, "ReasonCode")
    if raw_code is None:
        builder.issue(reference, f"{path}.ReasonCode", "status has no ReasonCode (the status code, e.g. DEP)", raw)
        return
    code = builder.normalised_code(RAW_FORMAT, raw_code, reference, f"{path}.ReasonCode", raw)
    if code is None:
        return
    consignments = _children(status, "AssociatedStatusConsignment")
    if not consignments:
        message = f"{raw_code} status has no AssociatedStatusConsignment (its pieces, flight, airport and time)"
        builder.issue(reference, f"{path}.AssociatedStatusConsignment", message, raw)
    for number, element in enumerate(consignments):
        details = read_status_consignment(element, raw_code)
        scan = _scan(raw_code, code, details, shipment, carrier, recorded)
        if isinstance(scan, tuple):
            sub_field, problem, reason_code = scan
            builder.issue(
                reference, f"{path}.AssociatedStatusConsignment[{number}].{sub_field}", problem, raw, reason_code
            )
        else:
            builder.add("scan", scan, reference, raw)


def _scan(
    raw_code: str, code: str, details: StatusDetails, shipment: _Shipment, carrier: str | None, recorded: int
) -> dict[str, object] | tuple[str, str, str]:
    """The scan of one status consignment, or (field, problem, reason_code)."""
    fields = details.fields
    at_departure = raw_code in AT_DEPARTURE_AIRPORT
    if fields.airports:
        airport_code = fields.airports[0] if at_departure or len(fields.airports) == 1 else fields.airports[1]
    else:
        airport_code = shipment.origin if at_departure else shipment.destination
    location_field = f"{_MOVEMENT}.SpecifiedLocation.ID"
    if not airport_code:
        return location_field, f"{raw_code} status names no airport and the MasterConsignment none", "malformed_record"
    if details.moment is None:
        return (
            details.moment_path,
            f"{raw_code} status has no time (SpecifiedEvent/OccurrenceDateTime)",
            "malformed_record",
        )
    try:
        airport = known_airport(airport_code)
    except IdentifierError as error:
        return location_field, str(error), "unknown_location"
    try:
        when = timestamp_of(status_time(details.moment, airport.time_zone), details.moment)
    except IdentifierError as error:
        return details.moment_path, str(error), "malformed_record"
    awb_pieces = Pieces(False, shipment.total_pieces, None, None) if shipment.total_pieces else None
    return scan_event(
        event_id=content_id(RAW_FORMAT, shipment.awb, raw_code, airport.code, details.moment, asdict(fields)),
        source="flight",
        code=code,
        raw_code=raw_code,
        raw_format=RAW_FORMAT,
        carrier=carrier or shipment.awb[:3],
        event_time_ms=when.epoch_ms,
        utc_offset_minutes=when.utc_offset_minutes,
        recorded_time_ms=recorded,
        handling_unit=shipment.awb,
        location=location(airport.code, "airport", airport.country, airport.name),
        refs=references(awb=shipment.awb, flight_number=fields.flight),
        reason=status_reason(raw_code, fields, awb_pieces),
    )


def _element_bytes(element: ElementTree.Element) -> bytes:
    """The element as XML, for a dead letter: without the text that follows it in its parent."""
    tail, element.tail = element.tail, None
    try:
        return ElementTree.tostring(element)
    finally:
        element.tail = tail


# --- namespace-aware element access -----------------------------------------------------------


def _split_tag(tag: object) -> tuple[str, str]:
    """``{namespace}Name`` → (namespace, Name); comments and processing instructions → ("", "")."""
    match = _TAG.match(tag) if isinstance(tag, str) else None
    return (match.group(1) or "", match.group(2)) if match else ("", "")


def _children(parent: ElementTree.Element, name: str) -> list[ElementTree.Element]:
    """Children called ``name`` in a Cargo-XML namespace (status message or data model)."""
    found = []
    for child in parent:
        namespace, local_name = _split_tag(child.tag)
        if local_name == name and (_DATA_NAMESPACE.match(namespace) or _STATUS_NAMESPACE.match(namespace)):
            found.append(child)
    return found


def _child(parent: ElementTree.Element, name: str) -> ElementTree.Element | None:
    children = _children(parent, name)
    return children[0] if children else None


def _text(parent: ElementTree.Element, *path: str) -> str | None:
    """Stripped text at ``path`` (first match at each step); None when absent or blank."""
    element: ElementTree.Element | None = parent
    for name in path:
        element = _child(element, name) if element is not None else None
    text = (element.text or "").strip() if element is not None else ""
    return text or None


def _whole_number(text: str | None) -> int | None:
    return int(text) if text and _WHOLE_NUMBER.match(text) else None
