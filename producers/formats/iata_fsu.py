"""IATA Cargo-IMP FSU (freight status update) text messages → unit-level ScanEvents per AWB.

Accepted syntax (docs/formats.md, "IATA Cargo-IMP FSU"): one or more messages per file, each
starting with an ``FSU/nn`` header line, then the AWB consignment detail line
(``020-12345675FRAJFK/T1K100``), then one status line per event (``DEP/LH400/16OCT/FRAJFK/T1K100``).
The Type B envelope is skipped: SOH/STX/ETX control characters (ETX ends a message), address lines
(``QK LGGFMCV``, or addresses alone), the origin line (``.HDQFMCK 301245``, whose UTC date-time
group is the message's envelope time), ``ZCZC`` / ``NNNN`` and ``=HEADER``-style lines. ``OSI``
(other service information), ``OCI`` (other customs information) and ``ULD`` lines carry no status
event and are skipped; a line starting with ``/`` continues the previous line. A message written on
one line (``FSU/14 <AWB line> <status line>``) is split before its AWB and status lines.

Status line fields are recognised by their form, whatever their position: flight (``LH400``, or
``QR/0843`` in two fields), day
and optional local time (``16OCT`` / ``16OCT1230``), a separate time (``1230``, ``A1230`` actual,
``E`` estimated, ``S`` scheduled), airport pair (``FRAJFK``, or ``HKG/NLU`` in adjacent fields) or
airport (``JFK``), pieces and
weight (``T10K250.5``; ``P5K100T10`` = part shipment, 5 of 10 pieces), and for DIS the
discrepancy code (``MSCA``). Times are local at the event's airport and converted to UTC with its
time zone (``producers.formats.airports``); the year, absent from Cargo-IMP, is the latest that
puts the event no later than the message's envelope time, else the time it is read
(``reference_time_ms``, injectable), give or take ``CLOCK_SKEW``; BKD's day, a booked flight's
date, takes the year nearest the reference time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from producers.formats.base import FormatError, ParseResult
from producers.formats.identifiers import IdentifierError, known_airport, parse_awb, timestamp_of
from producers.formats.records import ResultBuilder, content_id, decode_text, location, now_ms, references, scan_event

RAW_FORMAT = "iata-fsu"
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
#: Status codes whose event happens at the origin of the airport pair (the others at its destination).
AT_DEPARTURE_AIRPORT = frozenset({"BKD", "RCS", "MAN", "DEP", "FOH", "TFD", "PRE"})
#: Cargo-IMP lines that carry no status event: other service / customs information, ULD details.
INFORMATION_LINES = frozenset({"OSI", "OCI", "ULD"})
#: Status codes whose day is a flight's date, which may lie ahead (a booking on next week's flight):
#: their year is the one that puts the day nearest the reference time, not before it.
FLIGHT_DATED = frozenset({"BKD"})
#: How far past the reference time an event may lie (clocks of sender and reader disagree a little).
CLOCK_SKEW: Final = timedelta(hours=1)

_HEADER = re.compile(r"^FSU/(\d{1,2})$")
#: Type B envelope lines: priority + addresses, addresses alone, the origin line, SITA/telex framing.
_ENVELOPE = re.compile(r"^(?:Q[A-Z] .*|\..*|=.*|ZCZC.*|NNNN)$")
#: Address lines without a priority code: envelope only where no message is open (after a ``QK`` line).
_ADDRESSES = re.compile(r"^[A-Z0-9]{7}(?: [A-Z0-9]{7})*$")
_ORIGIN_TIME = re.compile(r"^\.[A-Z0-9]{7}\s+(\d{2})(\d{2})(\d{2})\b")
#: Control characters of the Type B frame: SOH opens an envelope, STX its text, ETX ends the text.
_FRAME_SPLIT = re.compile(r"([\x01\x03])")
_ONE_LINE_HEADER = re.compile(r"^FSU/\d{1,2}\s")
_ONE_LINE_BREAK = re.compile(r"\s+(?=\d{3}-\d{8}|[A-Z]{3}/)")
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_AWB_LINE = re.compile(r"^(\d{3}-\d{8})([A-Z]{3})?([A-Z]{3})?(?:/(.*))?$")
_STATUS_LINE = re.compile(r"^([A-Z]{3})(?:/(.*))?$")
_PIECES = re.compile(r"^([TP])(\d{1,4})(?:([KL])(\d+(?:\.\d+)?))?(?:(?:MC|CF|CI|CC|DV)\d+(?:\.\d+)?)?(?:T(\d{1,4}))?$")
_DAY = re.compile(r"^(\d{2})([A-Z]{3})(\d{4})?$")
_TIME = re.compile(r"^([AES]?)(\d{4})$")
_FLIGHT = re.compile(r"^[A-Z0-9]{2}[A-Z]?\d{1,4}[A-Z]?$")
_CARRIER = re.compile(r"^(?=.*[A-Z])[A-Z0-9]{2}$")  # an airline designator, e.g. QR, LH, 5X
_FLIGHT_NUMBER = re.compile(r"^\d{3,4}[A-Z]?$")
_AIRPORT_PAIR = re.compile(r"^[A-Z]{6}$")
_AIRPORT = re.compile(r"^[A-Z]{3}$")
_DISCREPANCY = re.compile(r"^[A-Z]{4}$")


@dataclass(frozen=True)
class Pieces:
    part: bool
    count: int
    weight: str | None
    total: int | None


@dataclass
class StatusFields:
    flight: str | None = None
    day: str | None = None
    time: str | None = None
    airports: tuple[str, ...] = ()
    pieces: Pieces | None = None
    discrepancy: str | None = None


def _pieces(token: str) -> Pieces | None:
    match = _PIECES.match(token)
    if not match:
        return None
    kind, count, unit, weight, total = match.groups()
    return Pieces(kind == "P", int(count), f"{weight} {unit}" if weight else None, int(total) if total else None)


def read_status_fields(tokens: list[str]) -> StatusFields:
    """Classify a status line's tokens by their form (the first of each kind wins). A carrier code
    followed by a flight number (``QR/0843``) is one flight; two airports in adjacent fields
    (``HKG/NLU``) are a pair, like ``HKGNLU``."""
    fields = StatusFields()
    previous = ""
    for token in tokens:
        if fields.pieces is None and (pieces := _pieces(token)):
            fields.pieces = pieces
        elif fields.day is None and (day := _DAY.match(token)):
            fields.day = day.group(1) + day.group(2)
            fields.time = day.group(3)
        elif fields.day is not None and fields.time is None and (time := _TIME.match(token)):
            fields.time = time.group(2)
        elif not fields.airports and _AIRPORT_PAIR.match(token):
            fields.airports = (token[:3], token[3:])
        elif not fields.airports and _AIRPORT.match(token):
            fields.airports = (token,)
        elif len(fields.airports) == 1 and previous == fields.airports[0] and _AIRPORT.match(token):
            fields.airports = (previous, token)
        elif fields.flight is None and _CARRIER.match(previous) and _FLIGHT_NUMBER.match(token):
            fields.flight = previous + token
        elif fields.flight is None and _FLIGHT.match(token) and any(c.isdigit() for c in token):
            fields.flight = token
        elif fields.discrepancy is None and _DISCREPANCY.match(token):
            fields.discrepancy = token
        previous = token
    return fields


def local_datetime(
    day: str, hhmm: str | None, zone: ZoneInfo, reference_ms: int, *, may_lie_ahead: bool = False
) -> datetime:
    """Cargo-IMP ``16OCT`` + ``1230`` at an airport → aware datetime, in the latest year that puts it no
    later than ``reference_ms`` (+ ``CLOCK_SKEW``): a status reports what has happened. A flight date
    that ``may_lie_ahead`` takes the year nearest ``reference_ms`` instead."""
    day_of_month, month_name = int(day[:2]), day[2:]
    if month_name not in MONTHS:
        raise IdentifierError(f"day {day!r} has no valid month (JAN..DEC)")
    hour, minute = (int(hhmm[:2]), int(hhmm[2:])) if hhmm else (0, 0)
    if hour > 23 or minute > 59:
        raise IdentifierError(f"time {hhmm!r} is not a valid hhmm")
    latest = reference_ms + CLOCK_SKEW / timedelta(milliseconds=1)
    reference_year = datetime.fromtimestamp(reference_ms / 1000, zone).year
    candidates = []
    # Eight years back reach a 29FEB whatever the reference year.
    for year in range(reference_year + 1, reference_year - 8, -1):
        try:
            candidates.append(datetime(year, MONTHS.index(month_name) + 1, day_of_month, hour, minute, tzinfo=zone))
        except ValueError:
            continue
    if may_lie_ahead and candidates:
        return min(candidates, key=lambda moment: abs(moment.timestamp() * 1000 - reference_ms))
    for moment in candidates:
        if moment.timestamp() * 1000 <= latest:
            return moment
    raise IdentifierError(f"day {day!r} does not exist")


def envelope_time_ms(day: int, hour: int, minute: int, reference_ms: int) -> int | None:
    """A Type B origin line's ``ddhhmm`` (UTC) → epoch ms, in the latest month no later than
    ``reference_ms`` (+ ``CLOCK_SKEW``); None when no such day exists in the last year."""
    if hour > 23 or minute > 59:
        return None
    latest = reference_ms + CLOCK_SKEW / timedelta(milliseconds=1)
    reference = datetime.fromtimestamp(reference_ms / 1000, UTC)
    year, month = reference.year, reference.month
    for _ in range(13):
        try:
            moment = datetime(year, month, day, hour, minute, tzinfo=UTC)
        except ValueError:
            moment = None
        if moment is not None and moment.timestamp() * 1000 <= latest:
            return int(moment.timestamp() * 1000)
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return None


@dataclass
class _Message:
    number: int
    header_line: int
    lines: list[tuple[int, str]]  # (line number, text), continuation lines joined
    envelope_ms: int | None  # the Type B origin line's date-time group, when the envelope has one


def _split_messages(text: str, source_name: str, reference_ms: int) -> list[_Message]:
    messages: list[_Message] = []
    current: _Message | None = None  # the message lines are added to; None inside an envelope
    envelope_ms: int | None = None
    for line_number, raw_line in enumerate(text.splitlines(), start=1):
        for piece in _pieces_of(raw_line):
            if piece in ("\x01", "\x03"):
                # SOH opens an envelope, ETX ends a message's text: until the next header, envelope.
                current = None
                envelope_ms = None if piece == "\x01" else envelope_ms
                continue
            line = piece
            if _HEADER.match(line):
                current = _Message(len(messages) + 1, line_number, [], envelope_ms)
                messages.append(current)
                envelope_ms = None
            elif _ENVELOPE.match(line) or (current is None and _ADDRESSES.match(line)):
                current = None  # a new envelope: the previous message has ended
                origin = _ORIGIN_TIME.match(line)
                if origin:
                    envelope_ms = envelope_time_ms(*(int(group) for group in origin.groups()), reference_ms)
            elif current is not None:
                _add_line(current, line_number, line)
    if not messages:
        raise FormatError(f"{source_name}: no FSU/nn header line; not a Cargo-IMP FSU message")
    return messages


def _pieces_of(raw_line: str) -> list[str]:
    """A physical line's frame characters (SOH, ETX) and text lines. A message written on one line
    (``FSU/14 020-12345675FRAJFK/T1K100 BKD/16OCT1317/FRA/ACME``, as documentation renders it) is
    split before its AWB and status lines."""
    pieces = []
    for piece in _FRAME_SPLIT.split(raw_line):
        if piece in ("\x01", "\x03"):
            pieces.append(piece)
            continue
        line = _CONTROLS.sub("", piece).strip()
        if _ONE_LINE_HEADER.match(line):
            pieces.extend(part.strip() for part in _ONE_LINE_BREAK.split(line) if part.strip())
        elif line:
            pieces.append(line)
    return pieces


def _add_line(message: _Message, line_number: int, line: str) -> None:
    if line.startswith("/") and message.lines:
        number, previous = message.lines[-1]
        message.lines[-1] = (number, previous + line)
    else:
        message.lines.append((line_number, line))


def parse(
    data: bytes, source_name: str, *, carrier: str | None = None, reference_time_ms: int | None = None
) -> ParseResult:
    """Parse Cargo-IMP FSU messages; ``reference_time_ms`` (default: now, the time the message is read)
    bounds each event's year, as does an earlier envelope time."""
    text = decode_text(data, source_name)
    builder = ResultBuilder()
    recorded = now_ms()
    reference_ms = reference_time_ms if reference_time_ms is not None else recorded
    for message in _split_messages(text, source_name, reference_ms):
        message_reference = min(reference_ms, message.envelope_ms or reference_ms)
        _parse_message(message, source_name, carrier, message_reference, recorded, builder)
    return builder.result


def _parse_message(
    message: _Message, source_name: str, carrier: str | None, reference_ms: int, recorded: int, builder: ResultBuilder
) -> None:
    where = f"FSU message {message.number}"
    whole = "\n".join(line for _, line in message.lines).encode()
    if not message.lines:
        builder.issue(f"{source_name}:{message.header_line} ({where})", "awb", "message has no AWB line", whole)
        return
    awb_line_number, awb_line = message.lines[0]
    awb_match = _AWB_LINE.match(awb_line)
    if not awb_match:
        builder.issue(
            f"{source_name}:{awb_line_number} ({where})",
            "awb",
            f"{awb_line!r} is not an AWB consignment line like 020-12345675FRAJFK/T1K100",
            whole,
        )
        return
    try:
        awb = parse_awb(awb_match.group(1))
    except IdentifierError as error:
        builder.issue(f"{source_name}:{awb_line_number} ({where})", "awb", str(error), whole)
        return
    awb_origin, awb_destination = awb_match.group(2), awb_match.group(3)
    awb_pieces = _pieces(awb_match.group(4) or "")
    if len(message.lines) == 1:
        builder.issue(f"{source_name}:{awb_line_number} ({where})", "status", "message has no status line", whole)
    status_number = 0
    for line_number, line in message.lines[1:]:
        reference = f"{source_name}:{line_number} ({where})"
        status_match = _STATUS_LINE.match(line)
        if not status_match:
            builder.issue(
                reference, "status", f"{line!r} is not a status line like DEP/LH400/16OCT/FRAJFK/T1K100", line.encode()
            )
            continue
        raw_code = status_match.group(1)
        if raw_code in INFORMATION_LINES:
            continue
        field = f"status[{status_number}]"
        status_number += 1
        code = builder.normalised_code(RAW_FORMAT, raw_code, reference, f"{field}.code", line.encode())
        if code is None:
            continue
        fields = read_status_fields((status_match.group(2) or "").split("/"))
        scan = _scan(
            raw_code, code, fields, awb, awb_origin, awb_destination, awb_pieces, line, carrier, reference_ms, recorded
        )
        if isinstance(scan, tuple):
            sub_field, problem, reason_code = scan
            builder.issue(reference, f"{field}.{sub_field}", problem, line.encode(), reason_code)
        else:
            builder.add("scan", scan, reference, line.encode())


def _scan(
    raw_code: str,
    code: str,
    fields: StatusFields,
    awb: str,
    awb_origin: str | None,
    awb_destination: str | None,
    awb_pieces: Pieces | None,
    line: str,
    carrier: str | None,
    reference_ms: int,
    recorded: int,
) -> dict[str, object] | tuple[str, str, str]:
    """The scan of one status line, or (field, problem, reason_code)."""
    at_departure = raw_code in AT_DEPARTURE_AIRPORT
    if fields.airports:
        airport_code = fields.airports[0] if at_departure or len(fields.airports) == 1 else fields.airports[1]
    else:
        airport_code = awb_origin if at_departure else awb_destination
    if not airport_code:
        return "airport", f"{raw_code} line has no airport and the AWB line names none", "malformed_record"
    if fields.day is None:
        return "day", f"{raw_code} line has no day like 16OCT", "malformed_record"
    try:
        airport = known_airport(airport_code)
    except IdentifierError as error:
        return "airport", str(error), "unknown_location"
    try:
        moment = local_datetime(
            fields.day,
            fields.time,
            ZoneInfo(airport.time_zone),
            reference_ms,
            may_lie_ahead=raw_code in FLIGHT_DATED,
        )
        when = timestamp_of(moment)
    except IdentifierError as error:
        return "day", str(error), "malformed_record"
    return scan_event(
        event_id=content_id(RAW_FORMAT, awb, line),
        source="flight",
        code=code,
        raw_code=raw_code,
        raw_format=RAW_FORMAT,
        carrier=carrier or awb[:3],
        event_time_ms=when.epoch_ms,
        utc_offset_minutes=when.utc_offset_minutes,
        recorded_time_ms=recorded,
        handling_unit=awb,
        location=location(airport.code, "airport", airport.country, airport.name),
        refs=references(awb=awb, flight_number=fields.flight),
        reason=status_reason(raw_code, fields, awb_pieces),
    )


def status_reason(raw_code: str, fields: StatusFields, awb_pieces: Pieces | None) -> str | None:
    """Discrepancies and part shipments, kept as information for operations (shared with XFSU)."""
    notes = []
    if raw_code == "DIS" and fields.discrepancy:
        notes.append(f"discrepancy {fields.discrepancy}")
    pieces = fields.pieces
    if pieces and pieces.part:
        total = pieces.total or (awb_pieces.total or awb_pieces.count if awb_pieces else None)
        of_total = f" of {total}" if total else ""
        weight = f", {pieces.weight}" if pieces.weight else ""
        notes.append(f"part shipment: {pieces.count}{of_total} pieces{weight}")
    elif raw_code == "DIS" and pieces:
        notes.append(f"{pieces.count} pieces")
    return "; ".join(notes) or None
