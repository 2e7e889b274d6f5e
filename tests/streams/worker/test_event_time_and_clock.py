"""Event times from other producers are re-checked by the worker, and one outlier cannot move the
SLA clock so far that every deadline fires (the reported attack: one scan dated 2100 made 200
healthy parcels due and emitted 800 breaches): the worker's clock is bounded by wall time x speed."""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY

from schemas.codec import default_codec
from schemas.topics import TopicNames
from streams.core.clock import EventClock
from streams.core.rules import SlaRules
from streams.worker.deadlines import DeadlineHeap
from streams.worker.processor import Guards, Processor, SourceMessage
from tests.streams.builders import DAY, HOUR, T0, manifest, scan, shipment

TOPICS = TopicNames("clock")
CODEC = default_codec()
WALL = T0 + 2 * HOUR  # the healthy scans are a little behind the wall clock
YEAR_2100_MS = 4_102_444_800_000
PARCELS = 200


def refused_jumps() -> float:
    return REGISTRY.get_sample_value("parcelstream_sla_clock_jumps_refused_total") or 0.0


class Worker:
    """The processor, its tables and the SLA timer's schedule, as the agent drives them."""

    def __init__(self, guards: Guards) -> None:
        self.deadlines = DeadlineHeap()
        self.clock = EventClock(1.0, bounded=True)
        self.processor = Processor(TOPICS, SlaRules(), self.clock, guards=guards)
        self.parcels: dict[str, bytes] = {}
        self.units: dict[str, bytes] = {}
        self.offset = 0
        self.outputs: dict[str, list[dict[str, Any]]] = {}

    def batch(self, records: list[tuple[str, dict[str, Any]]], wall_ms: int = WALL) -> None:
        batch = self.processor.batch(self.parcels, self.units)
        for kind, record in records:
            self.offset += 1
            topic = TOPICS.manifests if kind == "Manifest" else TOPICS.scans
            key = (record.get("tracking_number") or record["handling_unit"]).encode()
            batch.add(SourceMessage(topic, 0, self.offset, key, CODEC.encode(kind, record)), wall_ms)
        self.finish(batch)

    def timer(self, wall_ms: int) -> int:
        """One sweep of the SLA timer and the agent's evaluation of what it sent; returns the count."""
        now = self.clock.now_ms(wall_ms)
        due = self.deadlines.pop_due(now)
        batch = self.processor.batch(self.parcels, self.units)
        for tracking_number in due:
            batch.add_sla_due(tracking_number, wall_ms, tick=str(now))
        self.finish(batch)
        return len(due)

    def finish(self, batch: Any) -> None:
        for output in batch.outputs():
            self.outputs.setdefault(output.topic, []).append(CODEC.decode(output.value).value)
        batch.write_state(self.parcels, self.units)
        for tracking_number, deadline in batch.deadlines():
            self.deadlines.schedule(tracking_number, deadline)

    def breaches(self) -> list[dict[str, Any]]:
        return [event for event in self.outputs.get(TOPICS.sla_events, []) if event["kind"] == "breach"]

    def reasons(self) -> list[str]:
        return [letter["reason_code"] for letter in self.outputs.get(TOPICS.dead_letters, [])]


def healthy_traffic(worker: Worker) -> None:
    for start in range(0, PARCELS, 50):
        records: list[tuple[str, dict[str, Any]]] = []
        for index in range(start, start + 50):
            number = f"LP{index:08d}CN"
            records.append(
                (
                    "ScanEvent",
                    scan("ORDER_CREATED", T0, f"{number}-o", tracking_number=number, with_shipment=shipment()),
                )
            )
            records.append(("ScanEvent", scan("LINEHAUL_DEPARTED", T0 + HOUR, f"{number}-d", tracking_number=number)))
        worker.batch(records)
    assert len(worker.deadlines) == PARCELS and worker.breaches() == []


def outlier() -> tuple[str, dict[str, Any]]:
    return ("ScanEvent", scan("ORIGIN_RECEIVED", YEAR_2100_MS, "outlier", tracking_number="LP99999999CN"))


def test_event_time_dated_2100_is_dead_lettered_and_fires_no_breach() -> None:
    worker = Worker(Guards(max_future_ms=DAY, max_age_ms=365 * DAY))
    healthy_traffic(worker)
    worker.batch([outlier()])
    assert worker.reasons() == ["event_time_out_of_range"]
    assert "LP99999999CN" not in worker.parcels
    assert worker.timer(WALL + 1000) == 0
    assert worker.breaches() == []


def test_event_time_too_old_manifests_and_scans_are_dead_lettered_but_own_copies_are_not_rechecked() -> None:
    worker = Worker(Guards(max_future_ms=DAY, max_age_ms=365 * DAY))
    ancient = T0 - 400 * DAY
    worker.batch(
        [
            ("ScanEvent", scan("ORDER_CREATED", ancient, "old-1", tracking_number="LP00000001CN")),
            ("Manifest", manifest("m-old", "BAG-OLD", ["LP00000001CN"], time_ms=ancient)),
            ("ScanEvent", scan("ORDER_CREATED", T0 + 23 * HOUR, "new-1", tracking_number="LP00000002CN")),
        ]
    )
    letters = worker.outputs[TOPICS.dead_letters]
    assert [letter["reason_code"] for letter in letters] == ["event_time_out_of_range"] * 2
    assert all("PARCELSTREAM_MAX_AGE" in letter["reason"] for letter in letters)
    assert set(worker.parcels) == {"LP00000002CN"} and worker.units == {}


def test_clock_refuses_a_jump_beyond_the_wall_that_would_make_every_deadline_due() -> None:
    # The event-time bound turned off: the clock itself must hold.
    worker = Worker(Guards(max_future_ms=200 * 365 * DAY, max_age_ms=365 * DAY))
    healthy_traffic(worker)
    before = refused_jumps()
    worker.batch([outlier()])
    assert refused_jumps() == before + 1
    assert worker.reasons() == []  # the scan itself is applied: only its effect on the clock is refused
    assert worker.clock.now_ms(WALL) < T0 + DAY
    assert worker.timer(WALL + 1000) == 0
    assert worker.breaches() == []


def test_clock_a_jump_within_a_day_is_refused_too() -> None:
    # Within the event-time bounds, a scan 23 h ahead would still make every 12 h rule due.
    worker = Worker(Guards(max_future_ms=DAY, max_age_ms=365 * DAY))
    records = []
    for index in range(PARCELS):
        number = f"LP{index:08d}CN"
        records.append(("ScanEvent", scan("LINEHAUL_ARRIVED", T0, f"{number}-a", tracking_number=number)))
    worker.batch(records)
    ahead = scan("HUB_SORTED", WALL + 23 * HOUR, "ahead", tracking_number="LP99999999CN")
    before = refused_jumps()
    worker.batch([("ScanEvent", ahead)])
    assert refused_jumps() == before + 1
    assert worker.timer(WALL + 1000) == 0
    assert worker.breaches() == []


def test_clock_honest_time_still_fires_every_deadline() -> None:
    worker = Worker(Guards(max_future_ms=DAY, max_age_ms=365 * DAY))
    healthy_traffic(worker)
    before = refused_jumps()
    # No scan for 80 hours: the clock runs with wall time and the 72 h silence rule is broken for all.
    assert worker.timer(WALL + 80 * HOUR) == PARCELS
    assert refused_jumps() == before
    silence = {event["tracking_number"] for event in worker.breaches() if event["rule"] == "silence"}
    assert len(silence) == PARCELS


def test_event_time_with_a_compressed_clock_is_judged_on_the_clock_not_the_wall() -> None:
    # The demo: simulated time runs 8640 times faster than the wall (one day per 10 s).
    clock = EventClock(8640.0, bounded=True)
    guards = Guards(max_future_ms=DAY, max_age_ms=365 * DAY)
    processor = Processor(TOPICS, SlaRules(), clock, guards=guards)
    parcels: dict[str, bytes] = {}
    start = processor.batch(parcels, {})
    start.add(
        SourceMessage(
            TOPICS.scans,
            0,
            0,
            b"LP00000001CN",
            CODEC.encode("ScanEvent", scan("ORDER_CREATED", T0, "o1", tracking_number="LP00000001CN")),
        ),
        T0,
    )
    later = processor.batch(parcels, {})
    wall = T0 + 60_000  # a minute later: six simulated days
    in_simulated_time = scan("ORIGIN_RECEIVED", T0 + 6 * DAY, "r1", tracking_number="LP00000001CN")
    beyond = scan("ORIGIN_SORTED", T0 + 8 * DAY, "s1", tracking_number="LP00000001CN")
    for offset, record in enumerate((in_simulated_time, beyond), start=1):
        later.add(SourceMessage(TOPICS.scans, 0, offset, b"LP00000001CN", CODEC.encode("ScanEvent", record)), wall)
    letters = [CODEC.decode(o.value).value for o in later.outputs() if o.topic == TOPICS.dead_letters]
    assert [(letter["reason_code"], letter["source_offset"]) for letter in letters] == [("event_time_out_of_range", 2)]


def test_clock_a_sparse_backlog_moves_the_clock_and_fires_what_is_due() -> None:
    # A restarted worker reads weeks of past scans of a few parcels at once: no jump is refused.
    worker = Worker(Guards(max_future_ms=DAY, max_age_ms=365 * DAY))
    wall = T0 + 60 * DAY
    before = refused_jumps()
    records = []
    for index in range(20):
        number = f"LP{index:08d}CN"
        records.append(
            ("ScanEvent", scan("ORDER_CREATED", T0, f"{number}-o", tracking_number=number, with_shipment=shipment()))
        )
        records.append(("ScanEvent", scan("LINEHAUL_DEPARTED", T0 + DAY, f"{number}-d", tracking_number=number)))
    records.append(("ScanEvent", scan("ORIGIN_RECEIVED", T0 + 40 * DAY, "late-1", tracking_number="LP99999999CN")))
    worker.batch(records, wall_ms=wall)
    assert refused_jumps() == before and worker.clock.now_ms(wall) == T0 + 40 * DAY
    assert worker.timer(wall) == 20  # the 72 h silence passed long ago for the 20 parcels
    assert len({event["tracking_number"] for event in worker.breaches() if event["rule"] == "silence"}) == 20
