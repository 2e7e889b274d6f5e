"""What the worker does with its input messages, without Kafka or Faust.

``Processor.batch`` starts a ``Batch`` over the tables (any ``Mapping`` of key → JSON bytes: Faust
tables in the worker, dicts in tests). ``Batch.add`` decodes a message of ``scans``, ``manifests``
or ``scans-fanout`` and runs it through the pure core (``parcel.apply_scan``,
``consolidation.apply_manifest`` / ``apply_unit_scan``); ``Batch.add_sla_due`` evaluates a parcel
whose SLA deadline has come. Each key is decoded once per batch and the core mutates the decoded
object (``StateCache``); ``Batch.outputs`` are the messages to publish (one ParcelState per
changed parcel, its latest) and ``Batch.write_state`` stores each changed key once. Anything it
cannot process becomes one DeadLetter message; it never raises for bad input.
``Processor.handle`` / ``handle_sla_due`` do the same for one message and return a ``Result``.

The caller writes the tables first and publishes the outputs once the changelog records are
acknowledged: everything published was stored before. With the state, each batch writes an
outbox record per source partition (``outbox`` table, key: the partition): the StatusUpdates and
SlaEvents its inputs produced and the tracking numbers whose ParcelState it published. The caller
waits until the broker acknowledged a batch's outputs before the next batch overwrites the
outbox, so after a crash the outbox holds everything stored but perhaps not published; the
restarted worker publishes it again (``Outbox.republish``) before it processes anything. Replayed
inputs are duplicates that publish nothing new; dead letters and unit fan-out copies are produced
again by the replayed inputs themselves (units keep their own record). Every output carries a
stable id (update_id, sla_event_id, dead_letter_id) with one content, so consumers de-duplicate
the repeats.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from functools import cache
from itertools import chain, islice
from typing import Any, Final

import orjson
from aiokafka.partitioner import murmur2

from schemas.codec import Codec, DecodeError, EncodeError, default_codec
from schemas.dead_letters import PROCESSING_ERROR, dead_letter_record, processing_error_reason
from schemas.erasure import AUDIT_LOGGER, erased_key
from schemas.event_time import EVENT_TIME_OUT_OF_RANGE, check_event_time
from schemas.identifiers import identifier_problems, is_handling_unit
from schemas.topics import MAX_RECORD_BYTES, TopicNames
from streams.core.apply import UNKNOWN, Outcome, apply_due, apply_erasure, apply_scan, due_ms
from streams.core.clock import EventClock
from streams.core.consolidation import (
    DEFAULT_MAX_FANOUT_DEPTH,
    FANOUT_PATH,
    MAX_UNIT_MEMBERS,
    Unit,
    apply_manifest,
    apply_unit_scan,
    check_fanout,
    unit_due_ms,
    unit_expired,
)
from streams.core.parcel import MAX_SCANS_PER_PARCEL, Parcel
from streams.core.rules import Retention, SlaRules
from streams.core.stages import StageObservations
from streams.core.taxonomy import InvalidScanError
from streams.settings import WorkerSettings
from streams.worker import metrics
from streams.worker.estimates import PartitionEstimates
from streams.worker.serde import (
    AvroEntryCodec,
    ParcelStateEncoder,
    decode_parcel,
    encode_parcel,
    pack_outputs,
    unpack_outputs,
)

log = logging.getLogger(__name__)

STAGE = "streams"
#: Timer keys of handling units (a parcel's is its tracking number).
UNIT_TIMER_PREFIX = "unit:"
#: Timer keys of erased parcels' markers: ``erased:<partition>:<hash>`` (the hash has no partition of its own).
ERASED_PREFIX = "erased:"
ERASED_MARKER = b"E1:"
audit = logging.getLogger(AUDIT_LOGGER)


def timer_partition(timer_key: str, partitions: int) -> int:
    """Partition of what a timer key names (murmur2 of its key, as every producer partitions)."""
    if timer_key.startswith(ERASED_PREFIX):
        return int(timer_key.split(":", 2)[1])
    subject = timer_key.removeprefix(UNIT_TIMER_PREFIX)
    return (murmur2(subject.encode()) & 0x7FFFFFFF) % partitions


Table = Mapping[str, bytes]
Headers = tuple[tuple[str, bytes], ...]
#: Record header of a ``scans-fanout`` copy: the units it came through, outermost first, joined by
#: ","; its length is the copy's hop count (streams.core.consolidation, "Cycles and depth").
FANOUT_PATH_HEADER: Final = "parcelstream-fanout-path"
#: Event time after which an SLA evaluation that raised is tried again.
SLA_RETRY_MS: Final = 3600 * 1000
#: A batch's histogram observations: label values -> observed values.
Observed = dict[tuple[str, str], list[float]]
#: Largest table value the worker writes: under the broker's default record limit (1 MiB) with room
#: for the record's overhead. An outbox larger than this is split into several keys.
MAX_VALUE_BYTES = 900 * 1024


@dataclass(frozen=True)
class SourceMessage:
    topic: str
    partition: int | None
    offset: int | None
    key: bytes | None
    value: bytes | None
    headers: Headers = ()


@dataclass(frozen=True)
class Output:
    topic: str
    key: bytes | None
    value: bytes | None  # None: a tombstone
    headers: Headers | None = None


@dataclass(frozen=True)
class Guards:
    """Limits on input the edge cannot judge alone (docs/reliability.md, "Worker defences")."""

    #: Units a fan-out copy may pass through (container > ULD > bag > parcel is 3).
    max_fanout_depth: int = DEFAULT_MAX_FANOUT_DEPTH
    #: Plausible event times of scans and manifests from other producers, relative to the wall
    #: clock; None: not checked (the worker always passes its settings).
    max_future_ms: int | None = None
    max_age_ms: int | None = None


def header_path(headers: Headers) -> list[str] | None:
    """The fan-out path in ``headers``; None when a unit id in it is malformed."""
    for name, value in headers:
        if name == FANOUT_PATH_HEADER:
            units = value.decode("ascii", "replace").split(",") if value else []
            return units if all(is_handling_unit(unit) for unit in units) else None
    return []


@dataclass
class Result:
    outputs: list[Output] = field(default_factory=list)
    #: New table values, (key, JSON bytes), to write once the outputs are sent.
    parcel_state: tuple[str, bytes] | None = None
    unit_state: tuple[str, bytes] | None = None
    #: (tracking number, its next SLA deadline or None) when a parcel changed: for the timer's schedule.
    deadline: tuple[str, int | None] | None = None
    dead_lettered: bool = False
    #: (key, value) outbox records (``Batch.outbox_records``).
    outbox: list[tuple[str, bytes]] = field(default_factory=list)
    #: Every table change, (table, key, value or None to delete).
    changes: list[tuple[str, str, bytes | None]] = field(default_factory=list)

    def write_state(
        self,
        parcels: MutableMapping[str, bytes],
        units: MutableMapping[str, bytes],
        outbox: MutableMapping[str, bytes] | None = None,
    ) -> None:
        tables = {"parcels": parcels, "units": units}
        for table, key, value in self.changes:
            if value is not None:
                tables[table][key] = value
            elif key in tables[table]:
                del tables[table][key]
        if outbox is not None:
            outbox.update(self.outbox)


@cache
def default_entry_codec() -> AvroEntryCodec:
    return AvroEntryCodec(default_codec())


def dumps(state: Mapping[str, Any]) -> bytes:
    return orjson.dumps(state)


def loads(data: bytes) -> dict[str, Any]:
    return orjson.loads(data)


OutboxOutput = tuple[str, bytes | None, bytes | None]


def outbox_values(key: str, outputs: list[OutboxOutput]) -> list[tuple[str, bytes]]:
    """An outbox as table values: ``key`` holds the number of parts and the first, ``key.1``… the
    others, each under MAX_VALUE_BYTES."""
    parts: list[bytes] = []
    part: list[OutboxOutput] = []
    size = 0
    for output in outputs:
        output_size = len(output[0]) + len(output[1] or b"") + len(output[2] or b"") + 12
        if part and size + output_size > MAX_VALUE_BYTES:
            parts.append(pack_outputs(part))
            part, size = [], 0
        part.append(output)
        size += output_size
    parts.append(pack_outputs(part))
    values = [(key, str(len(parts)).encode() + b":" + parts[0])]
    values += [(f"{key}.{index}", data) for index, data in enumerate(parts[1:], start=1)]
    return values


def read_outbox(table: Table, key: str) -> list[OutboxOutput]:
    """The outputs an outbox (``outbox_values``) holds; none when it has no record."""
    first = table.get(key)
    if not first:
        return []
    count, _, data = bytes(first).partition(b":")
    outputs = unpack_outputs(data)
    for index in range(1, int(count)):
        outputs += unpack_outputs(table.get(f"{key}.{index}") or b"")
    return outputs


#: Parcels the warm cache keeps with their decoded history (~1 kB an entry, ~13 kB a parcel of the
#: benchmark: ~3-5 MB); the others it keeps as bytes only. 1,000 saved ~1,000 more decodes of the
#: 30k benchmark (~6 µs a scan) but raised the worker's peak RSS by ~15 MB.
DECODED_PARCELS: Final = 200


class WarmCache:
    """Decoded parcels and units kept from one batch to the next, so that a key that comes back
    soon is not decoded from its table again. Only valid while this worker is the only writer of
    the keys' partitions: the worker calls ``clear`` on every partition revocation and assignment,
    a batch that began before a ``clear`` keeps nothing (``generation``), and a batch that fails
    clears it (its objects may be changed without their table write)."""

    def __init__(self, max_keys: int, max_decoded: int = DECODED_PARCELS) -> None:
        self.max_keys = max_keys
        self.max_decoded = max_decoded
        self.generation = 0
        self._values: dict[tuple[str, str], Parcel | Unit] = {}
        #: The kept parcels that keep their decoded history entries (``History.decoded``), newest
        #: last: the next late scans of a parcel (unit fan-out copies) do not decode it again.
        self._decoded: dict[str, Parcel] = {}

    def __len__(self) -> int:
        return len(self._values)

    def get(self, table: str, key: str) -> Parcel | Unit | None:
        return self._values.get((table, key))

    def discard(self, table: str, key: str) -> None:
        self._values.pop((table, key), None)
        if table == "parcels":
            self._decoded.pop(key, None)

    def keep(self, generation: int, values: Iterator[tuple[str, str, Parcel | Unit]]) -> None:
        """Keep the final objects of a batch that began at ``generation`` (newest last)."""
        if generation != self.generation or self.max_keys <= 0:
            return
        store, decoded = self._values, self._decoded
        for table, key, value in values:
            store.pop((table, key), None)
            store[table, key] = value
            if isinstance(value, Parcel):
                decoded.pop(key, None)
                if value.history.decoded is not None:
                    decoded[key] = value
        excess = len(store) - self.max_keys
        if excess > 0:
            for oldest in list(islice(store, excess)):
                del store[oldest]
                if oldest[0] == "parcels":
                    decoded.pop(oldest[1], None)
        excess = len(decoded) - self.max_decoded
        if excess > 0:
            for oldest_key in list(islice(decoded, excess)):
                decoded.pop(oldest_key).history.forget()

    def clear(self) -> None:
        self.generation += 1
        self._values.clear()
        self._decoded.clear()


class StateCache:
    """The parcels and units that a batch of messages touches, decoded once and stored once.

    The first read of a key loads it from its table; the core then mutates the cached object, and
    ``changes`` yields each changed key's final value once, whatever the number of messages that
    changed it. A message that fails half-way is undone with ``rollback`` (see ``begin``).
    """

    def __init__(
        self, parcels: Table, units: Table, warm: WarmCache | None = None, entries: AvroEntryCodec | None = None
    ) -> None:
        self._tables = {"parcels": parcels, "units": units}
        self._entries = entries or default_entry_codec()
        self._warm = warm
        self._generation = warm.generation if warm is not None else 0
        self._parcels: dict[str, Parcel | None] = {}
        self._units: dict[str, Unit | None] = {}
        self.changed_parcels: dict[str, Parcel] = {}
        self.changed_units: dict[str, Unit] = {}
        #: (table, key) deleted by the batch: read as absent, undone by a later put.
        self.deleted: set[tuple[str, str]] = set()
        #: Erased parcels' markers written by the batch: key (``erased_key``) → erased at (event time).
        self.erased: dict[str, int] = {}
        #: Source partition of the message that last changed each (table, key): Faust's stores and
        #: changelogs put a key in the partition of the event that writes it.
        self.partitions: dict[tuple[str, str], int | None] = {}
        #: Partition of the message being processed.
        self.partition: int | None = None
        self._undo: tuple[str, str, Parcel | Unit | None, bool] | None = None

    def parcel(self, tracking_number: str) -> Parcel | None:
        if tracking_number not in self._parcels:
            warm = self._warm.get("parcels", tracking_number) if self._warm is not None else None
            if isinstance(warm, Parcel):
                self._parcels[tracking_number] = warm
            else:
                data = self._tables["parcels"].get(tracking_number)
                self._parcels[tracking_number] = None if data is None else decode_parcel(data, self._entries)
        return self._parcels[tracking_number]

    def unit(self, handling_unit: str) -> Unit | None:
        if handling_unit not in self._units:
            warm = self._warm.get("units", handling_unit) if self._warm is not None else None
            if isinstance(warm, Unit):
                self._units[handling_unit] = warm
            else:
                data = self._tables["units"].get(handling_unit)
                self._units[handling_unit] = None if data is None else Unit.from_dict(loads(data))
        return self._units[handling_unit]

    def begin(self, table: str, key: str) -> None:
        """Remember how to undo the coming change of ``key``: an unchanged key is simply loaded
        again; a key this batch already changed is restored from a snapshot (rare: keys repeat
        little within a batch, and only this path pays for the snapshot)."""
        changed = self.changed_parcels if table == "parcels" else self.changed_units
        current = changed.get(key)
        snapshot: Parcel | Unit | None = None
        if isinstance(current, Parcel):
            snapshot = current.copy()
        elif isinstance(current, Unit):
            snapshot = Unit.from_dict(current.to_dict())
        self._undo = (table, key, snapshot, (table, key) in self.deleted)

    def rollback(self) -> None:
        """Undo the changes since ``begin``: the core raised half-way through a message."""
        if self._undo is None:
            return
        table, key, snapshot, deleted = self._undo
        self._undo = None
        if self._warm is not None:  # the kept object may be the one half changed
            self._warm.discard(table, key)
        if deleted:  # deleted earlier in the batch: absent again
            (self._parcels if table == "parcels" else self._units)[key] = None  # type: ignore[index]
            (self.changed_parcels if table == "parcels" else self.changed_units).pop(key, None)
            self.deleted.add((table, key))
        elif isinstance(snapshot, Parcel):
            self._parcels[key] = self.changed_parcels[key] = snapshot
        elif isinstance(snapshot, Unit):
            self._units[key] = self.changed_units[key] = snapshot
        elif table == "parcels":
            self._parcels.pop(key, None)
        else:
            self._units.pop(key, None)

    def put_parcel(self, parcel: Parcel) -> None:
        self._parcels[parcel.tracking_number] = self.changed_parcels[parcel.tracking_number] = parcel
        self.partitions["parcels", parcel.tracking_number] = self.partition
        self.deleted.discard(("parcels", parcel.tracking_number))
        self._undo = None

    def put_unit(self, unit: Unit) -> None:
        self._units[unit.handling_unit] = self.changed_units[unit.handling_unit] = unit
        self.partitions["units", unit.handling_unit] = self.partition
        self.deleted.discard(("units", unit.handling_unit))
        self._undo = None

    def is_erased(self, tracking_number: str) -> bool:
        """Whether the parcel was erased (its marker, ``PARCELSTREAM_EXPIRE_DAYS`` long, refuses scans)."""
        key = erased_key(tracking_number)
        if key in self.erased:
            return True
        return ("parcels", key) not in self.deleted and self._tables["parcels"].get(key) is not None

    def mark_erased(self, tracking_number: str, erased_at_ms: int) -> str:
        key = erased_key(tracking_number)
        self.erased[key] = erased_at_ms
        self.deleted.discard(("parcels", key))
        self.partitions["parcels", key] = self.partition
        return key

    def erased_at(self, key: str) -> int | None:
        if key in self.erased:
            return self.erased[key]
        if ("parcels", key) in self.deleted:
            return None
        data = self._tables["parcels"].get(key)
        return int(bytes(data).removeprefix(ERASED_MARKER)) if data else None

    def delete(self, table: str, key: str) -> None:
        """Delete ``key`` (a tombstone at write time; reads in this batch find nothing)."""
        if table == "parcels":
            self._parcels[key] = None
            self.changed_parcels.pop(key, None)
            self.erased.pop(key, None)
        else:
            self._units[key] = None
            self.changed_units.pop(key, None)
        self.deleted.add((table, key))
        self.partitions[table, key] = self.partition
        self._undo = None

    def changes(self) -> Iterator[tuple[str, str, bytes | None]]:
        """(table name, key, bytes, or None to delete) of every changed key, once each."""
        for tracking_number, parcel in self.changed_parcels.items():
            yield "parcels", tracking_number, encode_parcel(parcel)
        for handling_unit, unit in self.changed_units.items():
            yield "units", handling_unit, dumps(unit.to_dict())
        for key, erased_at_ms in self.erased.items():
            yield "parcels", key, ERASED_MARKER + str(erased_at_ms).encode()
        for table, key in self.deleted:
            yield table, key, None

    def keep_warm(self) -> None:
        """Hand the batch's objects to the warm cache; call once their table writes are done."""
        if self._warm is None:
            return
        for table, key in self.deleted:
            self._warm.discard(table, key)
        parcels = (("parcels", key, parcel) for key, parcel in self._parcels.items() if parcel is not None)
        units = (("units", key, unit) for key, unit in self._units.items() if unit is not None)
        self._warm.keep(self._generation, chain(parcels, units))

    def write(self, parcels: MutableMapping[str, bytes], units: MutableMapping[str, bytes]) -> int:
        """Store every changed key's final value; returns the number of table writes."""
        tables = {"parcels": parcels, "units": units}
        written = 0
        for table, key, value in self.changes():
            if value is not None:
                tables[table][key] = value
            elif key in tables[table]:
                del tables[table][key]  # Faust: a changelog tombstone, so recovery does not bring it back
            written += 1
        return written


class Batch:
    """Messages processed together: outputs in processing order, one ParcelState per changed parcel
    (its latest: ``parcel-state`` is a compacted latest-value topic) and one table write per
    changed key, for the caller to store first and publish after (``write_state``, ``outputs``)."""

    def __init__(self, processor: Processor, parcels: Table, units: Table, warm: WarmCache | None = None) -> None:
        self.processor = processor
        self.state = StateCache(parcels, units, warm, processor.parcel_state_encoder.entries)
        self.messages = 0
        self.dead_letters = 0
        self._outputs: list[Output] = []
        #: Scans applied or fanned out, per (source, code), for the metrics (``count_metrics``).
        self.ingested: Counter[tuple[str, str]] = Counter()
        #: Status updates per status and SLA events per (rule, kind, route, carrier) label set, first
        #: emitted in this batch: counted once per batch too.
        self.status_updates_counted: Counter[str] = Counter()
        self.sla_events_counted: Counter[tuple[str, str, str, str]] = Counter()
        #: Event-time lag (seconds) of each scan, stays and transits per label set: observed once
        #: per batch too.
        self.event_time_lags: list[float] = []
        self.stage_dwell: Observed = {}
        self.transit: Observed = {}
        #: Keys whose due time may have moved: a parcel with the SLA deadline its last evaluation
        #: found (``_UNKNOWN``: to compute), a unit, a due time, or None (gone).
        self._touched: dict[str, tuple[Parcel, int | object | None] | Unit | int | None] = {}
        #: Per source partition: the StatusUpdates and SlaEvents its messages produced (the outbox).
        self.outbox: dict[int | None, list[Output]] = {}

    def add(self, message: SourceMessage, wall_ms: int) -> None:
        """Process one message of scans, manifests or scans-fanout."""
        self.messages += 1
        self.state.partition = message.partition
        self.processor.process(message, self, wall_ms)

    def add_sla_due(
        self,
        tracking_number: str,
        wall_ms: int,
        partition: int | None = None,
        tick: str | None = None,
        source: SourceMessage | None = None,
    ) -> None:
        """Something is due for this key (no scan needed): SLA rules, expiry, archiving of a parcel,
        the end of a unit. ``tick`` is the due message's value: the timer's event-time clock, which
        is the decision's now (``unit:<clock>`` for a handling unit). ``source``: the sla-due
        message, named by a dead letter if the evaluation raises."""
        self.messages += 1
        self.state.partition = partition
        self.processor.process_sla_due(tracking_number, self, wall_ms, tick, source)

    def rearm(self, tracking_number: str, deadline_ms: int) -> None:
        """Schedule the parcel's timer again at ``deadline_ms`` (an evaluation that raised)."""
        self._touched[tracking_number] = deadline_ms

    def emit(self, output: Output) -> None:
        self._outputs.append(output)

    def touch(self, parcel: Parcel, outcome: Outcome | None = None) -> None:
        """The parcel's due time may have moved; ``outcome`` may carry the SLA deadline its
        evaluation found (not computed again)."""
        known = outcome is not None and outcome.deadline_known
        self._touched[parcel.tracking_number] = (parcel, outcome.next_deadline_ms if known else UNKNOWN)  # type: ignore[union-attr]

    def touch_unit(self, unit: Unit) -> None:
        self._touched[UNIT_TIMER_PREFIX + unit.handling_unit] = unit

    def untouch(self, timer_key: str) -> None:
        """The key is gone: its timer too."""
        self._touched[timer_key] = None

    def schedule(self, timer_key: str, due_ms: int | None) -> None:
        self._touched[timer_key] = due_ms

    def keep(self, output: Output) -> None:
        """Publish ``output`` and keep it in the batch's outbox (a crash re-sends it from there)."""
        self._outputs.append(output)
        self.outbox.setdefault(self.state.partition, []).append(output)

    def outputs(self) -> list[Output]:
        """Everything to publish: the latest ParcelState of each changed parcel, then the other
        outputs in processing order."""
        topic, encode = self.processor.topics.parcel_state, self.processor.parcel_state_encoder.encode
        states = [
            # An archived parcel's marker is not published: its ParcelState is a tombstone.
            Output(topic, tracking_number.encode(), None if parcel.archived_at_ms is not None else encode(parcel))
            for tracking_number, parcel in self.state.changed_parcels.items()
        ]
        states += [
            Output(topic, key.encode(), None)
            for table, key in self.state.deleted
            if table == "parcels" and not key.startswith(ERASED_PREFIX)
        ]
        return states + self._outputs

    def outbox_records(self) -> list[tuple[int | None, str, bytes]]:
        """(source partition, outbox key, value) to store with the batch's state: per partition its
        kept outputs and the tracking numbers of the ParcelStates it published (value b"": the
        parcel's current ParcelState is published again), split into several keys when large."""
        topic = self.processor.topics.parcel_state
        kept: dict[int | None, list[OutboxOutput]] = {
            partition: [(o.topic, o.key, o.value) for o in outputs] for partition, outputs in self.outbox.items()
        }
        partitions = self.state.partitions
        for tracking_number, parcel in self.state.changed_parcels.items():
            partition = partitions["parcels", tracking_number]
            value = None if parcel.archived_at_ms is not None else b""
            kept.setdefault(partition, []).append((topic, tracking_number.encode(), value))
        for table, key in self.state.deleted:
            if table == "parcels" and not key.startswith(ERASED_PREFIX):
                kept.setdefault(partitions[table, key], []).append((topic, key.encode(), None))
        records: list[tuple[int | None, str, bytes]] = []
        for partition, outputs in kept.items():
            records.extend((partition, key, value) for key, value in outbox_values(str(partition), outputs))
        return records

    def deadlines(self) -> list[tuple[str, int | None]]:
        """(timer key, next due time or None) of every key the batch changed or evaluated: a parcel's
        tracking number (``apply.due_ms``), ``unit:<id>`` for a unit (``consolidation.unit_due_ms``)."""
        rules, retention = self.processor.rules, self.processor.retention
        due: list[tuple[str, int | None]] = []
        for key, value in self._touched.items():
            if isinstance(value, tuple):
                parcel, sla_deadline = value
                due.append((key, due_ms(parcel, rules, retention, sla_deadline)))
            elif isinstance(value, Unit):
                due.append((key, unit_due_ms(value, retention.unit_retention_ms)))
            elif isinstance(value, int):
                due.append((key, value))
            else:
                due.append((key, None))
        return due

    def write_state(
        self,
        parcels: MutableMapping[str, bytes],
        units: MutableMapping[str, bytes],
        outbox: MutableMapping[str, bytes] | None = None,
    ) -> int:
        written = self.state.write(parcels, units)
        if outbox is not None:
            for _partition, key, value in self.outbox_records():
                outbox[key] = value
                written += 1
        return written

    def count_metrics(self) -> None:
        """Count the batch's ingested scans and first emitted outputs (once, when it is done)."""
        self.processor.count_ingested(self.ingested)
        self.processor.count_outputs(self.status_updates_counted, self.sla_events_counted)
        self.processor.observe(self.event_time_lags, self.stage_dwell, self.transit)
        self.ingested.clear()
        self.status_updates_counted.clear()
        self.sla_events_counted.clear()
        self.event_time_lags.clear()
        self.stage_dwell.clear()
        self.transit.clear()


class Processor:
    @classmethod
    def from_settings(
        cls, settings: WorkerSettings, topics: TopicNames | None = None, *, estimates: PartitionEstimates | None = None
    ) -> Processor:
        """The processor of a worker with these settings (its SLA rules, bounded event clock, guards,
        learned estimates, limits and retention); ``topics`` defaults to the settings' own."""
        return cls(
            topics or settings.topics,
            settings.sla_rules(),
            EventClock(settings.clock_speed, bounded=True),
            guards=Guards(
                max_fanout_depth=settings.max_fanout_depth,
                max_future_ms=settings.max_future_ms,
                max_age_ms=settings.max_age_ms,
            ),
            # The caller's learners when given (the worker restores them): an empty one is still the one.
            estimates=estimates if estimates is not None else PartitionEstimates(settings.estimate_config()),
            max_scans=settings.max_scans_per_parcel,
            max_unit_members=settings.max_unit_members,
            retention=settings.retention(),
        )

    def __init__(
        self,
        topics: TopicNames,
        rules: SlaRules,
        clock: EventClock,
        codec: Codec | None = None,
        guards: Guards | None = None,
        estimates: PartitionEstimates | None = None,
        *,
        max_scans: int = MAX_SCANS_PER_PARCEL,
        max_unit_members: int = MAX_UNIT_MEMBERS,
        retention: Retention | None = None,
    ) -> None:
        self.topics = topics
        self.rules = rules
        self.clock = clock
        #: Learned delivery estimates, one learner per partition; None: the heuristic only.
        self.estimates = estimates
        self.codec = codec or default_codec()
        self.guards = guards or Guards()
        self.parcel_state_encoder = ParcelStateEncoder(self.codec)
        self.entries = self.parcel_state_encoder.entries
        self.max_scans = max_scans
        self.max_unit_members = max_unit_members
        self.retention = retention or Retention()
        # prometheus_client's labels() costs more than the increment: keep each child.
        self._ingested: dict[tuple[str, str], Any] = {}
        self._status_updates: dict[str, Any] = {}
        self.event_time_lag = metrics.EVENT_TIME_LAG.labels(STAGE)
        self._carrier_labels = metrics.CarrierLabels()
        self._route_labels = metrics.RouteLabels()

    def batch(self, parcels: Table, units: Table, warm: WarmCache | None = None) -> Batch:
        """A batch over these tables: ``add`` messages, publish ``outputs()``, then ``write_state``
        (and ``state.keep_warm()`` when a ``WarmCache`` keeps decoded objects between batches)."""
        return Batch(self, parcels, units, warm)

    # -- one message at a time --------------------------------------------------------------------

    def handle(self, message: SourceMessage, parcels: Table, units: Table, wall_ms: int) -> Result:
        """Process one message of scans, manifests or scans-fanout (a batch of one)."""
        batch = self.batch(parcels, units)
        batch.add(message, wall_ms)
        return self._result(batch)

    def handle_sla_due(self, tracking_number: str, parcels: Table, wall_ms: int, tick: str | None = None) -> Result:
        """Evaluate the parcel's SLA rules now that a deadline has passed (no scan needed)."""
        batch = self.batch(parcels, {})
        batch.add_sla_due(tracking_number, wall_ms, tick=tick)
        return self._result(batch)

    @staticmethod
    def _result(batch: Batch) -> Result:
        result = Result(outputs=batch.outputs(), dead_lettered=batch.dead_letters > 0)
        result.outbox = [(key, value) for _partition, key, value in batch.outbox_records()]
        batch.count_metrics()
        for table, key, value in batch.state.changes():
            result.changes.append((table, key, value))
            if value is None or key.startswith(ERASED_PREFIX):
                continue
            if table == "parcels":
                result.parcel_state = (key, value)
            else:
                result.unit_state = (key, value)
        deadlines = batch.deadlines()
        if deadlines:
            result.deadline = deadlines[0]
        return result

    # -- input messages ---------------------------------------------------------------------------

    def process(self, message: SourceMessage, batch: Batch, wall_ms: int) -> None:
        """Process one message of scans, manifests or scans-fanout into ``batch``."""
        if message.value is None:
            return self._dead_letter(batch, message, "empty_message", "message has no value (tombstone)", wall_ms)
        try:
            decoded = self.codec.decode(message.value)
        except DecodeError as error:
            return self._dead_letter(batch, message, error.reason_code, error.reason, wall_ms)
        limit = MAX_RECORD_BYTES.get(decoded.record_name)
        if limit is not None and len(message.value) > limit:
            reason = f"a {decoded.record_name} of {len(message.value)} bytes is over the {limit}-byte limit"
            return self._dead_letter(batch, message, "oversized_record", reason, wall_ms)
        problems = identifier_problems(decoded.record_name, decoded.value)
        if problems:  # the edge refuses them; a record that got past it must not reach keys and pages
            reason = "; ".join(f"{name}: {problem}" for name, problem in problems)
            return self._dead_letter(batch, message, "invalid_identifier", reason, wall_ms)
        if message.topic == self.topics.scans_fanout:
            path = header_path(message.headers)
            if path is None:
                return self._dead_letter(batch, message, "malformed_record", "malformed fan-out path header", wall_ms)
            if path:
                decoded.value[FANOUT_PATH] = path
        else:  # records of other producers: their event times were judged by a clock we do not trust
            problem = self._event_time_problem(decoded.value.get("event_time_ms"), wall_ms)
            if problem:
                return self._dead_letter(batch, message, EVENT_TIME_OUT_OF_RANGE, problem, wall_ms)
        try:
            if decoded.record_name == "ScanEvent":
                return self._handle_scan(batch, message, decoded.value, wall_ms)
            if decoded.record_name == "Manifest":
                return self._handle_manifest(batch, message, decoded.value, wall_ms)
            if decoded.record_name == "ParcelCommand":
                return self._handle_command(batch, message, decoded.value, wall_ms)
            return self._dead_letter(
                batch,
                message,
                "unexpected_record",
                f"a {decoded.record_name} (schema id {decoded.schema_id}) is neither a ScanEvent nor a Manifest",
                wall_ms,
            )
        except InvalidScanError as error:
            batch.state.rollback()
            return self._dead_letter(batch, message, error.reason_code, error.reason, wall_ms)
        except Exception as error:  # a bug in the core must not stop the worker: the record waits in dead-letters
            batch.state.rollback()
            log.exception("processing %s[%s]@%s failed", message.topic, message.partition, message.offset)
            return self._dead_letter(batch, message, PROCESSING_ERROR, processing_error_reason(error), wall_ms)

    def _handle_scan(self, batch: Batch, message: SourceMessage, scan: dict[str, Any], wall_ms: int) -> None:
        tracking_number = scan.get("tracking_number")
        handling_unit = scan.get("handling_unit")
        subject = tracking_number or handling_unit
        if not subject:
            return self._dead_letter(
                batch,
                message,
                "malformed_record",
                f"scan {scan['event_id']} has neither a tracking_number nor a handling_unit",
                wall_ms,
            )
        if self._wrong_key(batch, message, subject, wall_ms):
            return None
        max_depth = self.guards.max_fanout_depth
        if tracking_number:  # a unit checks its copies itself, before it changes
            check_fanout(tracking_number, scan, is_unit=False, max_depth=max_depth)
        if not self.clock.observe(scan["event_time_ms"], wall_ms):
            # Ahead of the wall (streams.core.clock): the clock stopped at the wall; the scan is applied.
            metrics.SLA_CLOCK_JUMPS_REFUSED.inc()
        batch.event_time_lags.append(max(0.0, (wall_ms - scan["event_time_ms"]) / 1000))
        state = batch.state
        if tracking_number:
            state.begin("parcels", tracking_number)
            parcel = state.parcel(tracking_number)
            if parcel is None and state.is_erased(tracking_number):
                reason = "the parcel was erased; a late scan starts no new history"
                return self._dead_letter(batch, message, "parcel_erased", reason, wall_ms)
            learner = self.estimates.for_partition(message.partition) if self.estimates is not None else None
            outcome = apply_scan(
                parcel,
                scan,
                self.rules,
                self.clock.now_ms(wall_ms),
                learner,
                codec=self.entries,
                max_scans=self.max_scans,
            )
            if outcome.duplicate:
                metrics.DUPLICATE_SCANS.labels(scan["source"]).inc()
                return None
            state.put_parcel(outcome.parcel)
            if outcome.observations:
                self._observe_stages(batch, outcome.parcel, outcome.observations)
            self._parcel_outputs(batch, outcome.parcel, outcome.status_updates, outcome.sla_events, outcome=outcome)
        else:
            assert handling_unit  # the subject, as tracking_number is empty
            state.begin("units", handling_unit)
            unit, fanout = apply_unit_scan(state.unit(handling_unit), scan, max_depth, self.retention.unit_retention_ms)
            self._check_unit_size(unit)
            state.put_unit(unit)
            batch.touch_unit(unit)
            for member_scan in fanout:
                batch.emit(self._fanout_output(member_scan))
        batch.ingested[scan["source"], scan["code"]] += 1
        return None

    def _handle_command(self, batch: Batch, message: SourceMessage, command: dict[str, Any], wall_ms: int) -> None:
        """A ParcelCommand: ``erase`` removes every trace of the parcel the worker keeps (its table
        entry, timer and cached copy; a ParcelState tombstone so compaction and the projector drop
        the rest) and leaves a marker under a hash of the number that refuses its late scans for
        ``PARCELSTREAM_EXPIRE_DAYS``. An absent parcel is erased too: a replay is safe."""
        tracking_number = command["tracking_number"]
        if self._wrong_key(batch, message, tracking_number, wall_ms):
            return
        state = batch.state
        outcome = apply_erasure(state.parcel(tracking_number), tracking_number)
        state.delete("parcels", tracking_number)
        batch.untouch(tracking_number)
        erased_at_ms = self.clock.now_ms(wall_ms)
        marker = state.mark_erased(tracking_number, erased_at_ms)
        partition = message.partition if message.partition is not None else 0
        batch.schedule(
            f"{ERASED_PREFIX}{partition}:{marker.removeprefix(ERASED_PREFIX)}", erased_at_ms + self.retention.expire_ms
        )
        metrics.PARCELS_ERASED.inc()
        # The audit line names the parcel by the marker's hash only.
        audit.info(
            "erased parcel %s: command %s, reason %r, stored state %s, at %d",
            marker,
            command["command_id"],
            command["reason"],
            "deleted" if outcome.parcel.history.last_key is not None else "absent",
            wall_ms,
        )

    def _handle_manifest(self, batch: Batch, message: SourceMessage, manifest: dict[str, Any], wall_ms: int) -> None:
        handling_unit = manifest["handling_unit"]
        if self._wrong_key(batch, message, handling_unit, wall_ms):
            return
        batch.state.begin("units", handling_unit)
        retention_ms = self.retention.unit_retention_ms
        unit, fanout = apply_manifest(batch.state.unit(handling_unit), manifest, self.max_unit_members, retention_ms)
        self._check_unit_size(unit)
        batch.state.put_unit(unit)
        batch.touch_unit(unit)
        for member_scan in fanout:
            batch.emit(self._fanout_output(member_scan))

    # -- SLA timer --------------------------------------------------------------------------------

    def process_sla_due(
        self,
        key: str,
        batch: Batch,
        wall_ms: int,
        tick: str | None = None,
        source: SourceMessage | None = None,
    ) -> None:
        """Decide what is due for ``key`` into ``batch``, at the tick's event time (the clock's now
        without one): a parcel's SLA rules, expiry or archiving (``apply.apply_due``), a unit's end.
        An evaluation that raises is dead-lettered (``processing_error``, naming ``source``) and its
        timer re-armed ``SLA_RETRY_MS`` later in event time: the timer already took it off its schedule."""
        kind, _, clock_value = (tick or "").rpartition(":")
        now_ms = int(clock_value) if clock_value.isdigit() else self.clock.now_ms(wall_ms)
        state = batch.state
        if key.startswith(ERASED_PREFIX):
            erased_at_ms = state.erased_at(key)
            if erased_at_ms is not None and now_ms >= erased_at_ms + self.retention.expire_ms:
                state.delete("parcels", key)
                batch.untouch(f"{ERASED_PREFIX}{state.partition or 0}:{key.removeprefix(ERASED_PREFIX)}")
            return
        if kind == "unit":
            unit = state.unit(key)
            if unit is not None and unit_expired(unit, self.retention.unit_retention_ms, now_ms):
                state.delete("units", key)
                batch.untouch(UNIT_TIMER_PREFIX + key)
            elif unit is not None:
                batch.touch_unit(unit)  # not yet (a later scan moved it): schedule it again
            return
        try:
            state.begin("parcels", key)
            parcel = state.parcel(key)
            if parcel is None:
                return
            outcome = apply_due(parcel, self.rules, self.retention, now_ms)
        except Exception as error:  # one parcel must not stop the timer of the others
            state.rollback()
            log.exception("a due evaluation failed; dead-lettered, tried again in %d s", SLA_RETRY_MS // 1000)
            batch.rearm(key, now_ms + SLA_RETRY_MS)
            message = source or SourceMessage("sla-due", None, None, key.encode(), (tick or "").encode())
            self._dead_letter(batch, message, PROCESSING_ERROR, processing_error_reason(error), wall_ms)
            return
        if outcome.gone:
            state.delete("parcels", key)
            batch.untouch(key)
            metrics.PARCELS_GONE.inc()
            return
        if outcome.archived:
            state.put_parcel(outcome.parcel)
            batch.touch(outcome.parcel)
            metrics.PARCELS_ARCHIVED.inc()
            return
        if parcel.expired_at_ms is not None and any(u["status"] == "Expired" for u in outcome.status_updates):
            metrics.PARCELS_EXPIRED.inc()
        if outcome.changed:
            state.put_parcel(parcel)
        else:  # evaluate may tidy sla_open without an event: keep the stored value (and the warm cache) as it was
            state.rollback()
        self._parcel_outputs(batch, parcel, outcome.status_updates, outcome.sla_events, outcome=outcome)

    def stored_record(self, data: bytes) -> dict[str, Any]:
        """A stored parcel as its ParcelState dict, history decoded (tests, ``parcels show``)."""
        parcel = decode_parcel(data, self.entries)
        if parcel.archived_at_ms is not None:
            return parcel.to_dict()  # an archived parcel's marker
        return parcel.to_record()

    def deadline_of(self, data: bytes) -> int | None:
        """Next due time of a stored parcel (``apply.due_ms``)."""
        try:
            return due_ms(decode_parcel(data, self.entries), self.rules, self.retention)
        except Exception:
            log.exception("a stored parcel does not load; its SLA timer waits for its next scan")
            return None

    # -- helpers ----------------------------------------------------------------------------------

    def _parcel_outputs(
        self,
        batch: Batch,
        parcel: Parcel,
        status_updates: list[dict[str, Any]],
        sla_events: list[dict[str, Any]],
        *,
        count: bool = True,
        outcome: Outcome | None = None,
    ) -> None:
        """Status updates and SLA events now (kept in the outbox); the ParcelState once per batch
        (``Batch.outputs``). ``count``: false for outputs counted before; ``outcome``: the one that
        produced them, with the parcel's next SLA deadline."""
        key = parcel.tracking_number.encode()
        encode = self.codec.encode
        for update in status_updates:
            batch.keep(Output(self.topics.status_updates, key, encode("StatusUpdate", update)))
            if count:
                batch.status_updates_counted[update["status"]] += 1
        for event in sla_events:
            batch.keep(Output(self.topics.sla_events, key, encode("SlaEvent", event)))
            if count:
                labels = (
                    event["rule"],
                    event["kind"],
                    self._route_labels(event.get("route")),
                    self._carrier_labels(event.get("carrier")),
                )
                batch.sla_events_counted[labels] += 1
        batch.touch(parcel, outcome)

    def _observe_stages(self, batch: Batch, parcel: Parcel, observations: StageObservations) -> None:
        """Dwell and transit histograms (observed when the batch is done: ``Batch.count_metrics``):
        the core hands each stay and transit over once."""
        route = self._route_labels(parcel.route)
        for stage, seconds in observations.dwell:
            batch.stage_dwell.setdefault((stage, route), []).append(seconds)
        if observations.transit_seconds is not None:
            labels = (route, parcel.service_level or "unknown")
            batch.transit.setdefault(labels, []).append(observations.transit_seconds)

    def observe(self, event_time_lags: list[float], stage_dwell: Observed, transit: Observed) -> None:
        """Add a batch's observations to the event-time lag, stage dwell and transit histograms
        (one increment per bucket and label set instead of a locked ``observe`` per value)."""
        metrics.observe_all(self.event_time_lag, event_time_lags)
        for (stage, route), values in stage_dwell.items():
            metrics.observe_all(metrics.STAGE_DWELL.labels(stage, route), values)
        for (route, service_level), values in transit.items():
            metrics.observe_all(metrics.TRANSIT.labels(route, service_level), values)

    @staticmethod
    def _check_unit_size(unit: Unit) -> None:
        """A unit's table value must fit a broker record (its kept scans may carry long texts)."""
        size = len(dumps(unit.to_dict()))
        if size > MAX_VALUE_BYTES:
            raise InvalidScanError(
                "unit_too_large", f"unit {unit.handling_unit!r} would be stored in {size} bytes, over {MAX_VALUE_BYTES}"
            )

    def _fanout_output(self, member_scan: dict[str, Any]) -> Output:
        key = member_scan.get("tracking_number") or member_scan["handling_unit"]
        path = member_scan.pop(FANOUT_PATH, None) or []
        headers = ((FANOUT_PATH_HEADER, ",".join(path).encode()),)
        return Output(self.topics.scans_fanout, key.encode(), self.codec.encode("ScanEvent", member_scan), headers)

    def _event_time_problem(self, event_time_ms: object, wall_ms: int) -> str | None:
        """``schemas.event_time``'s rule at the wall clock; with a clock faster than the wall (the
        demo's compressed simulated time) event time runs ahead of the wall, so its own clock
        is now when it is later."""
        max_future, max_age = self.guards.max_future_ms, self.guards.max_age_ms
        if max_future is None or max_age is None or not isinstance(event_time_ms, int):
            return None
        now_ms = wall_ms
        if self.clock.speed > 1 and self.clock.started:
            now_ms = max(wall_ms, self.clock.now_ms(wall_ms))
        return check_event_time(event_time_ms, now_ms, max_future, max_age)

    def count_ingested(self, ingested: Counter[tuple[str, str]]) -> None:
        """Add a batch's scans to ``parcelstream_scans_ingested_total`` (one increment per label set)."""
        for (source, code), scans in ingested.items():
            counter = self._ingested.get((source, code))
            if counter is None:
                counter = self._ingested[(source, code)] = metrics.SCANS_INGESTED.labels(source, code)
            counter.inc(scans)

    def count_outputs(self, status_updates: Counter[str], sla_events: Counter[tuple[str, str, str, str]]) -> None:
        """Add a batch's first emitted outputs to ``parcelstream_status_updates_total`` and
        ``parcelstream_sla_events_total`` (one increment per label set)."""
        for status, updates in status_updates.items():
            counter = self._status_updates.get(status)
            if counter is None:
                counter = self._status_updates[status] = metrics.STATUS_UPDATES.labels(status)
            counter.inc(updates)
        for labels, events in sla_events.items():
            metrics.SLA_EVENTS.labels(*labels).inc(events)

    def _wrong_key(self, batch: Batch, message: SourceMessage, subject: str, wall_ms: int) -> bool:
        # State lives in the partition of its key: a record keyed by something else would update a
        # copy of the parcel in another partition.
        if message.key is not None and message.key != subject.encode():
            self._dead_letter(
                batch,
                message,
                "wrong_key",
                f"record about {subject!r} is keyed {message.key!r}; the key must be its tracking number or unit id",
                wall_ms,
            )
            return True
        return False

    def _dead_letter(self, batch: Batch, message: SourceMessage, reason_code: str, reason: str, wall_ms: int) -> None:
        dead_letter = dead_letter_record(
            stage=STAGE,
            reason_code=reason_code,
            reason=reason,
            payload=message.value or b"",
            key=message.key,
            source_topic=message.topic,
            source_partition=message.partition,
            source_offset=message.offset,
            recorded_time_ms=wall_ms,
        )
        try:
            value = self.codec.encode("DeadLetter", dead_letter)
        except EncodeError:  # only a reason too odd for Avro; keep the record, lose the detail
            value = self.codec.encode("DeadLetter", {**dead_letter, "reason": repr(reason)})
        metrics.DEAD_LETTERS.labels(STAGE, reason_code).inc()
        # The reason (and key) may repeat carrier text, personal data included: it goes on the
        # dead-letter topic only.
        log.warning("dead-lettered %s[%s]@%s: %s", message.topic, message.partition, message.offset, reason_code)
        batch.dead_letters += 1
        batch.emit(Output(self.topics.dead_letters, message.key, value))
