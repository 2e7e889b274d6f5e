"""The latency instrument's percentiles (benchmarks/latency.py): over every ParcelState, and apart
for the states that came by fan-out, whose tail alone can set the overall p99."""

from __future__ import annotations

import itertools
import math
import socket
import time
import uuid
from collections.abc import Callable

import pytest
from confluent_kafka import Producer

from benchmarks import latency
from benchmarks.data import build_dataset
from benchmarks.latency import latency_result
from schemas.codec import default_codec
from schemas.kafka_clients import producer_config
from schemas.topics import TopicNames
from tests.consumers.helpers import parcel_state


def test_one_unit_scans_members_set_the_overall_p99_and_are_reported_apart() -> None:
    own = [(float(ms), False) for ms in range(1, 197)]  # 196 states of the parcels' own scans: 1-196 ms
    members = [(677.0, True)] * 4  # one unit scan copied to 4 members, 2 % of the states
    result = latency_result(800.0, 200, members + own)

    assert (result.states, result.fanout_states) == (200, 4)
    assert result.p99_ms == 677.0
    assert result.fanout_p99_ms == 677.0
    assert result.direct_p99_ms == 194.0


def test_a_window_without_unit_scans_has_no_fanout_percentile() -> None:
    result = latency_result(40.0, 3, [(12.0, False), (15.0, False), (30.0, False)])

    assert result.fanout_states == 0
    assert math.isnan(result.fanout_p99_ms)
    assert result.direct_p99_ms == result.p99_ms == 30.0


@pytest.mark.timeout(20)
def test_the_load_run_reads_states_while_its_last_records_are_delivered(monkeypatch: pytest.MonkeyPatch) -> None:
    # A broker that never answers keeps every published record undelivered: a load run that waited
    # for them in a blocking flush (30 s) would read no state meanwhile, and the states the worker
    # published then would count the instrument's wait as their latency.
    monkeypatch.setattr(latency, "FLUSH_SECONDS", 0.3)
    monkeypatch.setattr(latency, "DRAIN_IDLE_SECONDS", 0.1)
    pending_at_reads: list[int] = []

    class Probe(latency.LoadRun):
        def read(self, timeout: float) -> list[tuple[float, bool]]:
            pending_at_reads.append(len(self.producer))
            return super().read(timeout)

    load = Probe(f"127.0.0.1:{unused_port()}", TopicNames(f"latency-{uuid.uuid4().hex[:8]}"), 1)
    record = next(record for record in build_dataset(20, seed=7).values if record[0] == "scan")
    try:
        result = load.run(itertools.repeat(record), rate=1000.0, seconds=0.02)
    finally:
        load.producer.purge()
        load.consumer.close()

    assert result.published > 0
    assert pending_at_reads and pending_at_reads[-1] > 0  # still undelivered, and read meanwhile


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.integration
@pytest.mark.timeout(30)
def test_a_read_returns_when_a_state_arrives_not_when_its_wait_ends(
    bootstrap_servers: str, topics_factory: Callable[..., TopicNames]
) -> None:
    # consume(5000, timeout) waits out the timeout unless 5000 records came: the load run's drain,
    # reading with a 0.5 s wait, then held the states of a step's last half second for up to 0.5 s.
    topics = topics_factory(partitions=1)
    load = latency.LoadRun(bootstrap_servers, topics, 1)
    try:
        assert load.read(0.5) == []  # the consumer is at the topic's end
        state = parcel_state("LX000000001BE", 1)
        producer = Producer(producer_config(bootstrap_servers))
        producer.produce(topics.parcel_state, key=b"LX000000001BE", value=default_codec().encode("ParcelState", state))
        assert producer.flush(10) == 0

        started = time.monotonic()
        read = load.read(60.0)
        waited = time.monotonic() - started
    finally:
        load.close()

    assert len(read) == 1 and read[0][1] is False
    assert waited < 20.0  # returned with the state (the broker holds an empty fetch 10 ms), not after 60 s
