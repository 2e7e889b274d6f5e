"""Unit cycles and fan-out depth through the worker's message handling: copies go round through
``scans-fanout`` (fed back here as the agent would read them, headers included) until nothing is
left, or a bound far beyond any honest nesting is hit."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from producers.publisher import Publisher
from schemas.codec import default_codec
from schemas.topics import TopicNames
from streams.core.clock import EventClock
from streams.core.rules import SlaRules
from streams.worker.processor import Guards, Output, Processor, SourceMessage
from tests.stages import PARTITIONS, StageLauncher, TopicReader, wait_for
from tests.streams.builders import HOUR, T0, manifest, scan

TOPICS = TopicNames("fanout")
CODEC = default_codec()
#: Rounds of scans-fanout before a test calls it a loop: honest nesting needs 3.
MAX_ROUNDS = 200


class Loop:
    """Tables, and the worker's inputs in rounds: each round's scans-fanout outputs are the next round."""

    def __init__(self, processor: Processor | None = None) -> None:
        self.processor = processor or Processor(TOPICS, SlaRules(), EventClock(1.0))
        self.parcels: dict[str, bytes] = {}
        self.units: dict[str, bytes] = {}
        self.offset = 0
        self.dead_letters: list[dict[str, Any]] = []
        self.copies = 0

    def message(self, topic: str, key: bytes, value: bytes, headers: Any = None) -> SourceMessage:
        self.offset += 1
        if headers:  # as the agent reads them back from scans-fanout
            return SourceMessage(topic, 0, self.offset, key, value, tuple(headers))
        return SourceMessage(topic, 0, self.offset, key, value)

    def run(self, inputs: list[SourceMessage]) -> int:
        """Process ``inputs`` and the fan-out they cause; returns the rounds it took."""
        rounds, queue = 0, inputs
        while queue and rounds < MAX_ROUNDS:
            rounds += 1
            following: list[SourceMessage] = []
            for source in queue:
                result = self.processor.handle(source, self.parcels, self.units, T0 + 30 * 24 * HOUR)
                result.write_state(self.parcels, self.units)
                for output in result.outputs:
                    if output.topic == TOPICS.scans_fanout:
                        self.copies += 1
                        following.append(self.fanout(output))
                    elif output.topic == TOPICS.dead_letters:
                        self.dead_letters.append(CODEC.decode(output.value).value)
            queue = following
        return rounds

    def fanout(self, output: Output) -> SourceMessage:
        return self.message(TOPICS.scans_fanout, output.key or b"", output.value, getattr(output, "headers", None))

    def manifest(self, unit: str, members: list[str], member_type: str, unit_type: str = "bag") -> SourceMessage:
        record = manifest(f"m-{unit}-{'-'.join(members)}", unit, members, unit_type=unit_type, member_type=member_type)
        return self.message(TOPICS.manifests, unit.encode(), CODEC.encode("Manifest", record))

    def unit_scan(self, unit: str, event_id: str, time_ms: int = T0) -> SourceMessage:
        record = scan("LINEHAUL_DEPARTED", time_ms, event_id, tracking_number=None, handling_unit=unit, source="flight")
        return self.message(TOPICS.scans, unit.encode(), CODEC.encode("ScanEvent", record))

    def reasons(self) -> list[str]:
        return [letter["reason_code"] for letter in self.dead_letters]


def test_unit_cycle_of_two_bags_stops_at_the_first_copy_that_comes_back() -> None:
    # The reported loop: A in B, B in A, and a scan of A; main went round 10,000 times.
    loop = Loop()
    loop.run([loop.manifest("BAGA", ["BAGB"], "bag"), loop.manifest("BAGB", ["BAGA"], "bag")])
    rounds = loop.run([loop.unit_scan("BAGA", "dep-1")])
    assert rounds <= 3
    assert loop.reasons() == ["unit_cycle"]
    # A repeat of the scan (a carrier re-sending it) does not start it again either.
    rounds = loop.run([loop.unit_scan("BAGA", "dep-1")])
    assert rounds <= 3 and loop.reasons() == ["unit_cycle", "unit_cycle"]


def test_unit_cycle_with_the_same_scan_injected_into_both_units_ends() -> None:
    # Both units stored the scan as their own: a duplicate by fan-out re-sends one hop further on
    # the path it came by, so the repeats get longer and are refused.
    loop = Loop()
    loop.run([loop.manifest("BAGA", ["BAGB"], "bag"), loop.manifest("BAGB", ["BAGA"], "bag")])
    rounds = loop.run([loop.unit_scan("BAGB", "dep-1"), loop.unit_scan("BAGA", "dep-1")])
    assert rounds <= 4
    assert loop.reasons() and set(loop.reasons()) <= {"unit_cycle", "fanout_too_deep"}


def test_unit_cycle_self_membership_is_dead_lettered_and_changes_nothing() -> None:
    loop = Loop()
    loop.run([loop.manifest("BAGA", ["BAGA"], "bag")])
    assert loop.reasons() == ["unit_cycle"]
    assert loop.units == {}


def test_unit_cycle_a_known_container_cannot_become_a_member() -> None:
    loop = Loop()
    loop.run([loop.manifest("ULD1", ["BAGA"], "bag", unit_type="uld"), loop.unit_scan("ULD1", "dep-1")])
    assert loop.reasons() == [] and loop.copies == 1  # BAGA now knows it is inside ULD1
    loop.run([loop.manifest("BAGA", ["ULD1"], "uld")])
    assert loop.reasons() == ["unit_cycle"]


def test_hop_count_nesting_of_container_uld_bag_parcel_reaches_the_parcel() -> None:
    loop = Loop()
    loop.run(
        [
            loop.manifest("CONT1", ["ULD1"], "uld", unit_type="container"),
            loop.manifest("ULD1", ["BAGA"], "bag", unit_type="uld"),
            loop.manifest("BAGA", ["LP00000001CN"], "parcel"),
        ]
    )
    assert loop.run([loop.unit_scan("CONT1", "dep-1")]) == 4  # 3 hops, then nothing
    assert loop.reasons() == []
    history = loop.processor.stored_record(loop.parcels["LP00000001CN"])["history"]
    assert "dep-1" in [entry["event_id"] for entry in history]


def test_hop_count_beyond_the_maximum_depth_is_dead_lettered() -> None:
    loop = Loop(Processor(TOPICS, SlaRules(), EventClock(1.0), guards=Guards(max_fanout_depth=2)))
    loop.run(
        [
            loop.manifest("CONT1", ["ULD1"], "uld", unit_type="container"),
            loop.manifest("ULD1", ["BAGA"], "bag", unit_type="uld"),
            loop.manifest("BAGA", ["LP00000001CN"], "parcel"),
        ]
    )
    loop.run([loop.unit_scan("CONT1", "dep-1")])
    assert loop.reasons() == ["fanout_too_deep"]
    assert "LP00000001CN" not in loop.parcels
    stored_bag = loop.units.get("BAGA")
    assert stored_bag is None or b"dep-1" not in stored_bag


def test_hop_count_travels_in_a_record_header_of_each_copy() -> None:
    loop = Loop()
    loop.run([loop.manifest("ULD1", ["BAGA"], "bag", unit_type="uld")])
    result = loop.processor.handle(loop.unit_scan("ULD1", "dep-1"), loop.parcels, loop.units, T0)
    [copy] = [output for output in result.outputs if output.topic == TOPICS.scans_fanout]
    assert copy.headers == (("parcelstream-fanout-path", b"ULD1"),)
    assert "fanout_path" not in CODEC.decode(copy.value).value


def test_hop_count_header_with_a_malformed_unit_is_dead_lettered() -> None:
    loop = Loop()
    record = scan("LINEHAUL_DEPARTED", T0, "dep-1", tracking_number="LP00000001CN")
    value = CODEC.encode("ScanEvent", record)
    loop.run([loop.message(TOPICS.scans_fanout, b"LP00000001CN", value, [("parcelstream-fanout-path", b"a b")])])
    assert loop.reasons() == ["malformed_record"]


@pytest.mark.integration
def test_unit_cycle_through_a_real_worker_stops_and_the_worker_goes_on(
    bootstrap_servers: str,
    topics_factory: Callable[..., TopicNames],
    stages: StageLauncher,
    readers: Callable[[str], TopicReader],
) -> None:
    topics = topics_factory(partitions=PARTITIONS)
    worker = stages.worker(topics, log_level="warning")
    now = time.time_ns() // 1_000_000
    publisher = Publisher(bootstrap_servers, topics)
    publisher.publish_manifest(manifest("m-a", "BAGA", ["BAGB"], member_type="bag", time_ms=now - HOUR))
    publisher.publish_manifest(manifest("m-b", "BAGB", ["BAGA"], member_type="bag", time_ms=now - HOUR))
    assert publisher.flush().ok
    publisher.publish_scan(scan("LINEHAUL_DEPARTED", now, "dep-1", tracking_number=None, handling_unit="BAGA"))
    publisher.publish_scan(scan("ORIGIN_RECEIVED", now, "good-1", tracking_number="LPGOOD001CN"))
    assert publisher.flush().ok

    dead_letters, fanout, states = (
        readers(topics.dead_letters),
        readers(topics.scans_fanout),
        readers(topics.parcel_state),
    )

    def cycle_refused() -> bool:
        dead_letters.poll()
        states.poll()
        return bool(dead_letters.records) and "LPGOOD001CN" in states.latest_by_key()

    wait_for(cycle_refused, 60, "the unit_cycle dead letter and the good parcel", [worker])
    assert [letter["reason_code"] for _key, letter in dead_letters.records] == ["unit_cycle"]
    fanout.poll()
    assert len(fanout.records) == 2  # BAGA -> BAGB, BAGB -> BAGA (refused): no further round
    assert worker.alive
