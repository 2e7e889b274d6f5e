"""Every Kafka topic of the pipeline: its name, key, value record, partitions and cleanup policy.

Data flow: producers → ``scans``, ``manifests`` → streams (via the internal ``scans-fanout``) →
``parcel-state``, ``status-updates``, ``sla-events`` → consumers. Anything unprocessable from any
stage → ``dead-letters``.

Keys and partitioning. A scan about one parcel is keyed by its tracking number; a scan about a
handling unit (bag, ULD, container) and a manifest are keyed by the unit's id. So a unit's scans
and its manifests meet in the same partition of the stream processor, which fans unit scans out
to the unit's members through ``scans-fanout`` (keyed by the member: tracking number or inner unit
id). The co-partitioned topics (``CO_PARTITIONED``) must have the same partition count, and every
producer must hash keys as the Java client and Faust do (murmur2): see ``KEY_PARTITIONER``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Final

#: librdkafka's name for the Java client's murmur2 partitioner (librdkafka's own default is CRC32,
#: which would send the same key to a different partition than Faust/aiokafka do).
KEY_PARTITIONER: Final = "murmur2_random"

DAY_MS: Final = 24 * 3600 * 1000

#: Largest encoded record a stage accepts per record type (a scan is ~200 B; a ULD manifest lists
#: thousands of parcels). Larger ones are dead-lettered: their state would outgrow Kafka's 1 MB
#: message limit downstream.
MAX_RECORD_BYTES: Final[dict[str, int]] = {"ScanEvent": 16 * 1024, "Manifest": 512 * 1024}
DEFAULT_PREFIX: Final = "parcelstream"


@dataclass(frozen=True)
class TopicSpec:
    suffix: str
    key: str
    value: str  # record name in schemas/registry.json
    cleanup_policy: str  # "delete" or "compact"
    retention_ms: int  # -1: keep forever
    doc: str

    def name(self, prefix: str = DEFAULT_PREFIX) -> str:
        return f"{prefix}.{self.suffix}"

    def config(self) -> dict[str, str]:
        # Explicit configs: Tansu reports no defaults, and a compacted topic must not lose its
        # history to time retention.
        return {"cleanup.policy": self.cleanup_policy, "retention.ms": str(self.retention_ms)}


SCANS: Final = TopicSpec(
    "scans",
    "tracking number, or handling unit id for unit scans",
    "ScanEvent",
    "delete",
    14 * DAY_MS,
    "Scan events published by carriers",
)
MANIFESTS: Final = TopicSpec(
    "manifests",
    "handling unit id",
    "Manifest",
    "delete",
    60 * DAY_MS,
    "Handling-unit membership: parcels in bags, bags in ULDs or containers",
)
SCANS_FANOUT: Final = TopicSpec(
    "scans-fanout",
    "tracking number or inner handling unit id",
    "ScanEvent",
    "delete",
    14 * DAY_MS,
    "Internal to streams: unit scans copied to each member of the unit",
)
PARCEL_STATE: Final = TopicSpec(
    "parcel-state",
    "tracking number",
    "ParcelState",
    "compact",
    -1,
    "Current state of every parcel (latest value per key)",
)
STATUS_UPDATES: Final = TopicSpec(
    "status-updates",
    "tracking number",
    "StatusUpdate",
    "delete",
    30 * DAY_MS,
    "Customer-visible status changes, each with a stable update_id",
)
SLA_EVENTS: Final = TopicSpec(
    "sla-events",
    "tracking number",
    "SlaEvent",
    "delete",
    30 * DAY_MS,
    "SLA at-risk warnings, breaches and recoveries",
)
DEAD_LETTERS: Final = TopicSpec(
    "dead-letters",
    "the rejected message's key, if any",
    "DeadLetter",
    "delete",
    30 * DAY_MS,
    "Input any stage could not process, with the reason",
)

PARCEL_COMMANDS: Final = TopicSpec(
    "parcel-commands",
    "tracking number",
    "ParcelCommand",
    "delete",
    7 * DAY_MS,
    "Operators' commands about a parcel (erase: a customer's right to erasure), honoured by streams",
)

ALL_TOPICS: Final[tuple[TopicSpec, ...]] = (
    SCANS,
    MANIFESTS,
    SCANS_FANOUT,
    PARCEL_STATE,
    STATUS_UPDATES,
    SLA_EVENTS,
    DEAD_LETTERS,
    PARCEL_COMMANDS,
)
#: Read together by one stream-processor agent; their keys must land in matching partitions.
CO_PARTITIONED: Final[tuple[TopicSpec, ...]] = (SCANS, MANIFESTS, SCANS_FANOUT, PARCEL_COMMANDS)


@dataclass(frozen=True)
class TopicNames:
    """Concrete topic names under one prefix (tests use a unique prefix each)."""

    prefix: str = DEFAULT_PREFIX

    @cached_property  # read per message by the worker: the name is built once
    def scans(self) -> str:
        return SCANS.name(self.prefix)

    @cached_property
    def manifests(self) -> str:
        return MANIFESTS.name(self.prefix)

    @cached_property
    def scans_fanout(self) -> str:
        return SCANS_FANOUT.name(self.prefix)

    @cached_property
    def parcel_state(self) -> str:
        return PARCEL_STATE.name(self.prefix)

    @cached_property
    def status_updates(self) -> str:
        return STATUS_UPDATES.name(self.prefix)

    @cached_property
    def sla_events(self) -> str:
        return SLA_EVENTS.name(self.prefix)

    @cached_property
    def dead_letters(self) -> str:
        return DEAD_LETTERS.name(self.prefix)

    @cached_property
    def parcel_commands(self) -> str:
        return PARCEL_COMMANDS.name(self.prefix)
