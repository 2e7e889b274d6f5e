"""What the worker does with one input message, without Kafka or Faust.

``Processor.handle`` decodes a message of ``scans``, ``manifests`` or ``scans-fanout``, runs it
through the pure core (``parcel.apply_scan``, ``consolidation.apply_manifest`` /
``apply_unit_scan``) against the state in the tables it is given (any ``Mapping`` of key → JSON
bytes: Faust tables in the worker, dicts in tests) and returns the messages to publish and the new
table values. ``Processor.handle_sla_due`` does the same for a parcel whose SLA deadline has come.
Anything it cannot process becomes one DeadLetter message; it never raises for bad input.

The caller publishes the outputs first and writes the tables after (``Result.write_state``): the
state change reaches the changelog no earlier than the messages it caused, so a worker killed in
between re-processes the message after restart instead of finding it already applied (a duplicate
scan publishes nothing). Every output carries a stable id (update_id, sla_event_id,
dead_letter_id), so that re-processing (at-least-once) repeats the same messages, which consumers
de-duplicate.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from schemas.codec import Codec, DecodeError, EncodeError, default_codec
from schemas.topics import TopicNames
from streams import metrics
from streams.clock import EventClock
from streams.consolidation import Unit, apply_manifest, apply_unit_scan
from streams.parcel import Parcel, apply_scan
from streams.sla import SlaRules, evaluate, next_deadline_ms
from streams.taxonomy import InvalidScanError

log = logging.getLogger(__name__)

STAGE = "streams"
Table = Mapping[str, bytes]


@dataclass(frozen=True)
class SourceMessage:
    topic: str
    partition: int | None
    offset: int | None
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True)
class Output:
    topic: str
    key: bytes | None
    value: bytes


@dataclass
class Result:
    outputs: list[Output] = field(default_factory=list)
    #: New table values, (key, JSON bytes), to write once the outputs are sent.
    parcel_state: tuple[str, bytes] | None = None
    unit_state: tuple[str, bytes] | None = None
    #: (tracking number, its next SLA deadline or None) when a parcel changed: for the timer's schedule.
    deadline: tuple[str, int | None] | None = None
    dead_lettered: bool = False

    def write_state(self, parcels: MutableMapping[str, bytes], units: MutableMapping[str, bytes]) -> None:
        if self.parcel_state is not None:
            parcels[self.parcel_state[0]] = self.parcel_state[1]
        if self.unit_state is not None:
            units[self.unit_state[0]] = self.unit_state[1]


def dumps(state: Mapping[str, Any]) -> bytes:
    return orjson.dumps(state)


def loads(data: bytes) -> dict[str, Any]:
    return orjson.loads(data)


class Processor:
    def __init__(self, topics: TopicNames, rules: SlaRules, clock: EventClock, codec: Codec | None = None) -> None:
        self.topics = topics
        self.rules = rules
        self.clock = clock
        self.codec = codec or default_codec()

    # -- input messages ---------------------------------------------------------------------------

    def handle(self, message: SourceMessage, parcels: Table, units: Table, wall_ms: int) -> Result:
        """Process one message of scans, manifests or scans-fanout."""
        if message.value is None:
            return self._dead_letter(message, "empty_message", "message has no value (tombstone)", wall_ms)
        try:
            decoded = self.codec.decode(message.value)
        except DecodeError as error:
            return self._dead_letter(message, error.reason_code, error.reason, wall_ms)
        try:
            if decoded.record_name == "ScanEvent":
                return self._handle_scan(message, decoded.value, parcels, units, wall_ms)
            if decoded.record_name == "Manifest":
                return self._handle_manifest(message, decoded.value, units, wall_ms)
            return self._dead_letter(
                message,
                "unexpected_record",
                f"a {decoded.record_name} (schema id {decoded.schema_id}) is neither a ScanEvent nor a Manifest",
                wall_ms,
            )
        except InvalidScanError as error:
            return self._dead_letter(message, error.reason_code, error.reason, wall_ms)
        except Exception as error:  # a bug in the core must not stop the worker: the record waits in dead-letters
            log.exception("processing %s[%s]@%s failed", message.topic, message.partition, message.offset)
            return self._dead_letter(message, "processing_error", f"{type(error).__name__}: {error}", wall_ms)

    def _handle_scan(
        self, message: SourceMessage, scan: dict[str, Any], parcels: Table, units: Table, wall_ms: int
    ) -> Result:
        tracking_number = scan.get("tracking_number")
        handling_unit = scan.get("handling_unit")
        subject = tracking_number or handling_unit
        if not subject:
            return self._dead_letter(
                message,
                "malformed_record",
                f"scan {scan['event_id']} has neither a tracking_number nor a handling_unit",
                wall_ms,
            )
        wrong_key = self._check_key(message, subject, wall_ms)
        if wrong_key is not None:
            return wrong_key
        self.clock.observe(scan["event_time_ms"], wall_ms)
        metrics.EVENT_TIME_LAG.labels(STAGE).observe(max(0.0, (wall_ms - scan["event_time_ms"]) / 1000))
        if tracking_number:
            return self._apply_parcel_scan(tracking_number, scan, parcels, wall_ms)
        unit, fanout = apply_unit_scan(self._load_unit(units, handling_unit), scan)
        result = Result(
            outputs=[self._fanout_output(member_scan) for member_scan in fanout],
            unit_state=(handling_unit, dumps(unit.to_dict())),
        )
        metrics.SCANS_INGESTED.labels(scan["source"], scan["code"]).inc()
        return result

    def _apply_parcel_scan(self, tracking_number: str, scan: dict[str, Any], parcels: Table, wall_ms: int) -> Result:
        outcome = apply_scan(self._load_parcel(parcels, tracking_number), scan, self.rules, self.clock.now_ms(wall_ms))
        if outcome.duplicate:
            metrics.DUPLICATE_SCANS.labels(scan["source"]).inc()
            return Result()
        result = self._parcel_outputs(outcome.parcel, outcome.changed, outcome.status_updates, outcome.sla_events)
        if outcome.changed:
            result.parcel_state = (tracking_number, dumps(outcome.parcel.to_dict()))
        metrics.SCANS_INGESTED.labels(scan["source"], scan["code"]).inc()
        self._count(outcome.status_updates, outcome.sla_events)
        return result

    def _handle_manifest(self, message: SourceMessage, manifest: dict[str, Any], units: Table, wall_ms: int) -> Result:
        handling_unit = manifest["handling_unit"]
        wrong_key = self._check_key(message, handling_unit, wall_ms)
        if wrong_key is not None:
            return wrong_key
        unit, fanout = apply_manifest(self._load_unit(units, handling_unit), manifest)
        return Result(
            outputs=[self._fanout_output(member_scan) for member_scan in fanout],
            unit_state=(handling_unit, dumps(unit.to_dict())),
        )

    # -- SLA timer --------------------------------------------------------------------------------

    def handle_sla_due(self, tracking_number: str, parcels: Table, wall_ms: int) -> Result:
        """Evaluate the parcel's SLA rules now that a deadline has passed (no scan needed)."""
        data = parcels.get(tracking_number)
        if data is None:
            return Result()
        try:
            parcel = Parcel.from_dict(loads(data))
            # evaluate records what it emits on the parcel: events returned means the parcel changed.
            sla_events = evaluate(parcel, self.rules, self.clock.now_ms(wall_ms))
            result = self._parcel_outputs(parcel, bool(sla_events), [], sla_events)
        except Exception:
            log.exception("SLA evaluation of parcel failed; it is evaluated again on its next scan")
            return Result()
        if sla_events:
            result.parcel_state = (tracking_number, dumps(parcel.to_dict()))
        self._count([], sla_events)
        return result

    def deadline_of(self, data: bytes) -> int | None:
        """Next SLA deadline of a stored parcel (rebuilding the timer's schedule)."""
        try:
            return next_deadline_ms(Parcel.from_dict(loads(data)), self.rules)
        except Exception:
            log.exception("a stored parcel does not load; its SLA timer waits for its next scan")
            return None

    # -- helpers ----------------------------------------------------------------------------------

    def _parcel_outputs(
        self, parcel: Parcel, changed: bool, status_updates: list[dict[str, Any]], sla_events: list[dict[str, Any]]
    ) -> Result:
        key = parcel.tracking_number.encode()
        outputs = []
        if changed:
            outputs.append(Output(self.topics.parcel_state, key, self.codec.encode("ParcelState", parcel.to_record())))
        outputs += [
            Output(self.topics.status_updates, key, self.codec.encode("StatusUpdate", u)) for u in status_updates
        ]
        outputs += [Output(self.topics.sla_events, key, self.codec.encode("SlaEvent", e)) for e in sla_events]
        return Result(outputs=outputs, deadline=(parcel.tracking_number, next_deadline_ms(parcel, self.rules)))

    def _fanout_output(self, member_scan: dict[str, Any]) -> Output:
        key = member_scan.get("tracking_number") or member_scan["handling_unit"]
        return Output(self.topics.scans_fanout, key.encode(), self.codec.encode("ScanEvent", member_scan))

    def _check_key(self, message: SourceMessage, subject: str, wall_ms: int) -> Result | None:
        # State lives in the partition of its key: a record keyed by something else would update a
        # copy of the parcel in another partition.
        if message.key is not None and message.key != subject.encode():
            return self._dead_letter(
                message,
                "wrong_key",
                f"record about {subject!r} is keyed {message.key!r}; the key must be its tracking number or unit id",
                wall_ms,
            )
        return None

    @staticmethod
    def _load_parcel(parcels: Table, tracking_number: str) -> Parcel | None:
        data = parcels.get(tracking_number)
        return None if data is None else Parcel.from_dict(loads(data))

    @staticmethod
    def _load_unit(units: Table, handling_unit: str) -> Unit | None:
        data = units.get(handling_unit)
        return None if data is None else Unit.from_dict(loads(data))

    @staticmethod
    def _count(status_updates: list[dict[str, Any]], sla_events: list[dict[str, Any]]) -> None:
        for update in status_updates:
            metrics.STATUS_UPDATES.labels(update["status"]).inc()
        for event in sla_events:
            metrics.SLA_EVENTS.labels(event["rule"], event["kind"], event.get("route") or "unknown").inc()

    def _dead_letter(self, message: SourceMessage, reason_code: str, reason: str, wall_ms: int) -> Result:
        # Stable id: the same input message dead-lettered again after a restart gets the same id.
        origin = f"{STAGE}|{message.topic}|{message.partition}|{message.offset}".encode()
        dead_letter = {
            "dead_letter_id": hashlib.sha256(origin + b"|" + (message.value or b"")).hexdigest()[:32],
            "stage": STAGE,
            "reason_code": reason_code,
            "reason": reason,
            "source_topic": message.topic,
            "source_partition": message.partition,
            "source_offset": message.offset,
            "source_reference": None,
            "key": message.key,
            "payload": message.value or b"",
            "recorded_time_ms": wall_ms,
        }
        try:
            value = self.codec.encode("DeadLetter", dead_letter)
        except EncodeError:  # only a reason too odd for Avro; keep the record, lose the detail
            value = self.codec.encode("DeadLetter", {**dead_letter, "reason": repr(reason)})
        metrics.DEAD_LETTERS.labels(STAGE, reason_code).inc()
        log.warning(
            "dead-lettered %s[%s]@%s: %s: %s", message.topic, message.partition, message.offset, reason_code, reason
        )
        return Result(outputs=[Output(self.topics.dead_letters, message.key, value)], dead_lettered=True)
