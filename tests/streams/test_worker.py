"""The stream-processor worker as a real process on the embedded broker: simulated traffic in,
parcel states, status updates, SLA events and dead letters out."""

from __future__ import annotations

import contextlib
import os
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from deploy.embedded import free_port
from producers.publisher import Publisher
from producers.simulator import SimulationConfig, simulate
from producers.simulator.model import AnomalyRates, Simulation
from schemas.codec import default_codec
from schemas.topics import TopicNames
from streams.taxonomy import classify
from tests.conftest import unique
from tests.streams.builders import HOUR, T0, scan, shipment

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 4
SIM_START_MS = 1_767_225_600_000  # fixed: reproducible journeys
CODEC = default_codec()


# --- the worker process ------------------------------------------------------------------------


class WorkerProcess:
    def __init__(self, command: list[str], log_path: Path, metrics_port: int) -> None:
        self.log_path = log_path
        self.metrics_port = metrics_port
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT, start_new_session=True
            )

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> int | None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def metric_total(self, name: str) -> float:
        """Sum of a counter's samples on the worker's /metrics endpoint."""
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name
        )

    def owned_partitions(self, topic: str) -> set[int]:
        """Partitions of ``topic`` this worker reports a consumer lag for (its assignment)."""
        try:
            text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        except httpx.HTTPError:
            return set()
        return {
            int(sample.labels["partition"])
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "parcelstream_consumer_lag" and sample.labels.get("topic") == topic
        }


@pytest.fixture
def start_worker(bootstrap_servers: str, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(topics: TopicNames, *, clock_speed: float = 1.0, name: str = "worker") -> WorkerProcess:
        metrics_port = free_port()
        command = [
            sys.executable,
            "-m",
            "streams",
            "worker",
            "--bootstrap-servers",
            bootstrap_servers,
            "--topic-prefix",
            topics.prefix,
            "--partitions",
            str(PARTITIONS),
            "--clock-speed",
            str(clock_speed),
            "--metrics-port",
            str(metrics_port),
            "--data-dir",
            str(tmp_path / name),
            "--log-level",
            os.environ.get("STREAMS_TEST_LOG_LEVEL", "warning"),
        ]
        worker = WorkerProcess(command, tmp_path / f"{name}-{len(started)}.log", metrics_port)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


# --- reading the output topics -----------------------------------------------------------------


class TopicReader:
    """Reads a whole topic from the beginning with assign() (no consumer-group join)."""

    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap_servers,
                "group.id": unique("reader"),
                "enable.auto.commit": False,
                "log_level": 0,
            }
        )
        self.consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        self.records: list[tuple[bytes | None, dict[str, Any]]] = []

    def poll(self) -> None:
        while True:
            batch = self.consumer.consume(num_messages=1000, timeout=0.2)
            if not batch:
                return
            for message in batch:
                if message.error() is None:
                    self.records.append((message.key(), CODEC.decode(message.value()).value))

    def latest_by_key(self) -> dict[str, dict[str, Any]]:
        # A key lives in one partition, read in order: the last record of a key is its latest.
        return {key.decode(): value for key, value in self.records if key is not None}

    def close(self) -> None:
        self.consumer.close()


@pytest.fixture
def readers(bootstrap_servers: str) -> Iterator[Callable[[str], TopicReader]]:
    opened: list[TopicReader] = []

    def open_reader(topic: str) -> TopicReader:
        reader = TopicReader(bootstrap_servers, topic)
        opened.append(reader)
        return reader

    yield open_reader
    for reader in opened:
        reader.close()


def wait_for(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    workers: list[WorkerProcess] | None = None,
    describe: Callable[[], str] = str,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        for worker in workers or []:
            if worker.process.poll() is not None:
                pytest.fail(
                    f"worker exited ({worker.process.returncode}) while waiting for {what}:\n{worker.log_tail()}"
                )
        time.sleep(0.2)  # polling a condition with a deadline
    logs = "\n".join(worker.log_tail() for worker in workers or [])
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}: {describe()}\n{logs}")


# --- simulated traffic and its truth -----------------------------------------------------------


def simulation(seed: int, parcels: int = 30, **anomalies: float) -> Simulation:
    return simulate(
        SimulationConfig(seed=seed, parcels=parcels, start_ms=SIM_START_MS, anomalies=AnomalyRates(**anomalies))
    )


def publish(bootstrap_servers: str, topics: TopicNames, records: list[Any]) -> None:
    publisher = Publisher(bootstrap_servers, topics)
    for record in records:
        if record.kind == "scan":
            publisher.publish_scan(record.value)
        else:
            publisher.publish_manifest(record.value)
    report = publisher.flush()
    assert report.ok, report.failures


def state_mismatches(sim: Simulation, states: dict[str, dict[str, Any]]) -> list[str]:
    """Parcels whose latest ParcelState differs from the truth (status or the scans that reached it)."""
    wrong = []
    for tracking_number, truth in sim.truth.items():
        state = states.get(tracking_number)
        expected_status = classify(truth.final_code).status
        if (
            state is None
            or state["status"] != expected_status
            or {entry["event_id"] for entry in state["history"]} != set(truth.event_ids)
        ):
            wrong.append(tracking_number)
    return wrong


def wait_for_truth(sim: Simulation, states: TopicReader, workers: list[WorkerProcess], timeout: float = 90) -> None:
    def matches() -> bool:
        states.poll()
        return not state_mismatches(sim, states.latest_by_key())

    def describe() -> str:
        latest = states.latest_by_key()
        lines = []
        for tracking_number in state_mismatches(sim, latest)[:5]:
            truth, state = sim.truth[tracking_number], latest.get(tracking_number)
            got = "no state" if state is None else f"{state['status']} with {len(state['history'])} scans"
            expected = f"{classify(truth.final_code).status} with {len(truth.event_ids)} scans"
            lines.append(f"{tracking_number}: {got}, expected {expected}")
        return "; ".join(lines)

    wait_for(matches, timeout, f"final states of {len(sim.truth)} parcels", workers, describe)


def unit_scans_before_their_manifest(sim: Simulation) -> set[str]:
    manifested: set[str] = set()
    early: set[str] = set()
    for record in sim.records:
        if record.kind == "manifest":
            manifested.add(record.value["handling_unit"])
        elif record.value["handling_unit"] and record.value["handling_unit"] not in manifested:
            early.add(record.value["event_id"])
    return early


# --- the tests ---------------------------------------------------------------------------------


def test_simulated_traffic_ends_in_the_true_final_states(
    bootstrap_servers: str,
    topics_factory: Callable[..., TopicNames],
    start_worker: Callable[..., WorkerProcess],
    readers: Callable[[str], TopicReader],
) -> None:
    topics = topics_factory(partitions=PARTITIONS)
    sim = simulation(seed=11, container_scan_before_manifest=1.0)
    early = unit_scans_before_their_manifest(sim)
    assert early, "the simulation should publish unit scans before their manifests"
    states = readers(topics.parcel_state)
    worker = start_worker(topics)

    publish(bootstrap_servers, topics, sim.records)
    wait_for_truth(sim, states, [worker])

    histories = [{entry["event_id"] for entry in state["history"]} for state in states.latest_by_key().values()]
    assert all(any(event_id in ids for ids in histories) for event_id in early)
    dead_letters = readers(topics.dead_letters)
    dead_letters.poll()
    assert dead_letters.records == []
    assert worker.metric_total("parcelstream_scans_ingested_total") >= len(
        {r.value["event_id"] for r in sim.records if r.kind == "scan"}
    )
    assert worker.stop() == 0


def test_poison_messages_are_dead_lettered_and_the_worker_goes_on(
    bootstrap_servers: str,
    topics_factory: Callable[..., TopicNames],
    start_worker: Callable[..., WorkerProcess],
    readers: Callable[[str], TopicReader],
) -> None:
    topics = topics_factory(partitions=PARTITIONS)
    worker = start_worker(topics)
    publisher = Publisher(bootstrap_servers, topics)
    publisher._produce(topics.scans, b"garbage", b"\x13not avro at all", "garbage")
    publisher._produce(topics.scans, b"unknown", struct.pack(">bI", 0, 424_242) + b"\x02\x04", "unknown schema")
    publisher.publish_scan(scan("TELEPORTED", T0, "poison-1", tracking_number="LPPOISON01CN"))
    publisher.publish_scan(scan("ORDER_CREATED", T0, "good-1", tracking_number="LPGOOD001CN", with_shipment=shipment()))
    publisher.publish_scan(scan("ORIGIN_RECEIVED", T0 + HOUR, "good-2", tracking_number="LPGOOD001CN"))
    assert publisher.flush().ok

    dead_letters, states = readers(topics.dead_letters), readers(topics.parcel_state)

    def processed() -> bool:
        dead_letters.poll()
        states.poll()
        good = states.latest_by_key().get("LPGOOD001CN")
        return len(dead_letters.records) >= 3 and good is not None and good["version"] == 2

    wait_for(processed, 60, "dead letters and the good parcel", [worker])
    letters = {value["reason_code"]: value for _key, value in dead_letters.records}
    assert set(letters) == {"bad_magic_byte", "unknown_schema_id", "unknown_code"}
    assert letters["bad_magic_byte"]["payload"] == b"\x13not avro at all"
    assert all(letter["stage"] == "streams" and letter["source_topic"] == topics.scans for letter in letters.values())
    assert states.latest_by_key()["LPGOOD001CN"]["status"] == "InTransit"
    assert "LPPOISON01CN" not in states.latest_by_key()
    assert worker.process.poll() is None


def test_sla_breach_fires_without_a_further_scan(
    bootstrap_servers: str,
    topics_factory: Callable[..., TopicNames],
    start_worker: Callable[..., WorkerProcess],
    readers: Callable[[str], TopicReader],
) -> None:
    topics = topics_factory(partitions=PARTITIONS)
    # 100,000 event seconds per wall second: the 72 h silence rule passes in under 3 s.
    worker = start_worker(topics, clock_speed=100_000)
    publisher = Publisher(bootstrap_servers, topics)
    publisher.publish_scan(scan("ORDER_CREATED", T0, "o1", tracking_number="LPQUIET001CN", with_shipment=shipment()))
    publisher.publish_scan(scan("LINEHAUL_DEPARTED", T0 + 2 * HOUR, "o2", tracking_number="LPQUIET001CN"))
    assert publisher.flush().ok

    sla_events, states = readers(topics.sla_events), readers(topics.parcel_state)

    def silence_breached() -> bool:
        sla_events.poll()
        return any(event["rule"] == "silence" and event["kind"] == "breach" for _key, event in sla_events.records)

    wait_for(silence_breached, 60, "a silence breach", [worker])
    silence = [event for _key, event in sla_events.records if event["rule"] == "silence"]
    # At this speed the at-risk point and the deadline can fall in one timer sweep: then only the breach fires.
    assert [event["kind"] for event in silence].count("breach") == 1
    breach = next(event for event in silence if event["kind"] == "breach")
    assert breach["tracking_number"] == "LPQUIET001CN"
    assert breach["observed_ms"] >= breach["deadline_ms"] == T0 + 2 * HOUR + 72 * HOUR
    wait_for(
        lambda: states.poll() or "silence:breach" in states.latest_by_key().get("LPQUIET001CN", {}).get("open_sla", []),
        30,
        "the breach in the parcel state",
        [worker],
    )


def test_a_killed_worker_restarts_from_its_changelog_without_conflicting_updates(
    bootstrap_servers: str,
    topics_factory: Callable[..., TopicNames],
    start_worker: Callable[..., WorkerProcess],
    readers: Callable[[str], TopicReader],
) -> None:
    topics = topics_factory(partitions=PARTITIONS)
    sim = simulation(seed=23)
    half = len(sim.records) // 2
    states, updates = readers(topics.parcel_state), readers(topics.status_updates)
    first = start_worker(topics, name="first")
    publish(bootstrap_servers, topics, sim.records[:half])

    def processing() -> bool:
        states.poll()
        return len(states.records) >= 20

    wait_for(processing, 60, "the first worker's output", [first])
    first.kill()  # SIGKILL: no commit, no flush
    publish(bootstrap_servers, topics, sim.records[half:])
    second = start_worker(topics, name="second")
    wait_for_truth(sim, states, [second], timeout=120)

    updates.poll()
    by_id: dict[str, dict[str, Any]] = {}
    for _key, update in updates.records:
        assert by_id.setdefault(update["update_id"], update) == update, "one update id, two contents"
    delivered = {update["tracking_number"] for update in by_id.values() if update["status"] == "Delivered"}
    assert delivered == {tn for tn, truth in sim.truth.items() if classify(truth.final_code).status == "Delivered"}


def test_two_workers_split_the_partitions_and_agree_with_the_truth(
    bootstrap_servers: str,
    topics_factory: Callable[..., TopicNames],
    start_worker: Callable[..., WorkerProcess],
    readers: Callable[[str], TopicReader],
) -> None:
    topics = topics_factory(partitions=PARTITIONS)
    workers = [start_worker(topics, name="a"), start_worker(topics, name="b")]

    def split() -> bool:
        owned = [worker.owned_partitions(topics.scans) for worker in workers]
        return all(owned) and not (owned[0] & owned[1]) and (owned[0] | owned[1]) == set(range(PARTITIONS))

    wait_for(split, 90, "both workers to own scans partitions", workers)
    sim = simulation(seed=37)
    states = readers(topics.parcel_state)
    publish(bootstrap_servers, topics, sim.records)
    wait_for_truth(sim, states, workers)
    assert all(worker.metric_total("parcelstream_scans_ingested_total") > 0 for worker in workers)
