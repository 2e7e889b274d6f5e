"""Stage processes for the integration tests: the worker, projector, notifier and a private Redis, each a
real OS process with its own log file, started by ``StageLauncher`` (the ``stages`` fixture of
``tests/conftest.py``, which stops them after the test); readers of whole topics (``assign()``, no group
join; the ``readers`` fixture) and a condition poller that fails with the processes' log tails."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from deploy.embedded import free_port
from producers.publisher import Publisher
from schemas.codec import default_codec
from schemas.topics import TopicNames
from tests.conftest import unique

REPO_ROOT = Path(__file__).resolve().parents[1]
PARTITIONS = 4
CODEC = default_codec()


class StageProcess:
    """One stage as a child process in its own session (so a kill reaches its children too)."""

    def __init__(
        self, name: str, command: list[str], log_path: Path, env: Mapping[str, str] | None = None, metrics_port: int = 0
    ) -> None:
        self.name = name
        self.command = command
        self.log_path = log_path
        self.metrics_port = metrics_port
        full_env = dict(os.environ)
        full_env.update(env or {})
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT, env=full_env, start_new_session=True
            )

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, chars: int = 3000) -> str:
        return f"--- {self.name} ({self.log_path.name}) ---\n" + self.log_text()[-chars:]

    def kill(self) -> None:
        """SIGKILL: no commit, no flush, no goodbye."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit within ``timeout`` seconds; returns the exit code."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def metrics_text(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text

    def metric_total(self, name: str, **labels: str) -> float:
        """Sum of a metric's samples (matching ``labels``) on the process's /metrics page."""
        return sum(
            sample.value
            for family in text_string_to_metric_families(self.metrics_text())
            for sample in family.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
        )

    def owned_partitions(self, topic: str) -> set[int]:
        """Partitions of ``topic`` this worker reports a consumer lag for (its assignment); none while its
        /metrics page does not answer yet."""
        try:
            text = self.metrics_text()
        except httpx.HTTPError:
            return set()
        return {
            int(sample.labels["partition"])
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "parcelstream_consumer_lag" and sample.labels.get("topic") == topic
        }

    def rss_bytes(self) -> int:
        """Resident memory of the process (Linux /proc)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0


def python_command(*args: str) -> list[str]:
    return [sys.executable, "-m", *args]


@dataclass
class StageLauncher:
    """Starts stage processes on the caller's topic prefix, Redis prefix and fresh consumer groups;
    ``stop_all`` (run by the ``stages`` fixture) stops every one still running."""

    bootstrap_servers: str
    log_dir: Path
    started: list[StageProcess] = field(default_factory=list)

    def start(
        self, name: str, command: list[str], env: Mapping[str, str] | None = None, metrics_port: int = 0
    ) -> StageProcess:
        """Any command as a stage process, logging to ``<log_dir>/<name>-<n>.log``."""
        log_path = self.log_dir / f"{name}-{len(self.started)}.log"
        process = StageProcess(name, command, log_path, env, metrics_port)
        self.started.append(process)
        return process

    def worker(
        self,
        topics: TopicNames,
        name: str = "worker",
        clock_speed: float = 1.0,
        log_level: str = "info",
        **settings: str,
    ) -> StageProcess:
        """A stream-processor worker; its state lives in ``<log_dir>/<name>-data``, so a worker started
        again under the same name finds its local tables. ``settings`` are WorkerSettings fields (as
        PARCELSTREAM_* variables), e.g. commit_interval="3600". Parcels and units are kept ten years
        unless a test sets ``retention_days`` / ``expire_days`` / ``unit_retention_days``: a
        simulation published at once moves the event clock to its last day within seconds, and a
        test of final states must still find every parcel and every unit a late manifest names."""
        settings = {"retention_days": "3650", "expire_days": "3650", "unit_retention_days": "3650", **settings}
        metrics_port = free_port()
        command = python_command(
            "streams",
            "worker",
            "--bootstrap-servers",
            self.bootstrap_servers,
            "--topic-prefix",
            topics.prefix,
            "--partitions",
            str(PARTITIONS),
            "--clock-speed",
            str(clock_speed),
            "--metrics-port",
            str(metrics_port),
            "--data-dir",
            str(self.log_dir / f"{name}-data"),
            "--log-level",
            log_level,
        )
        env = {f"PARCELSTREAM_{key.upper()}": value for key, value in settings.items()}
        return self.start(name, command, env, metrics_port)

    def projector(self, topics: TopicNames, redis_url: str, redis_prefix: str, name: str = "projector") -> StageProcess:
        metrics_port = free_port()
        command = python_command(
            "consumers",
            "projector",
            "--bootstrap-servers",
            self.bootstrap_servers,
            "--topic-prefix",
            topics.prefix,
            "--redis-url",
            redis_url,
            "--redis-prefix",
            redis_prefix,
            "--group-id",
            unique("projector"),
            "--metrics-port",
            str(metrics_port),
        )
        return self.start(name, command, {}, metrics_port)

    def notifier(
        self,
        topics: TopicNames,
        redis_url: str,
        redis_prefix: str,
        name: str = "notifier",
        group_id: str | None = None,
        **settings: str,
    ) -> StageProcess:
        """``settings`` are NotifierSettings fields (as PARCELSTREAM_* variables), e.g. notifier_max_retries="2"."""
        metrics_port = free_port()
        env = {
            "PARCELSTREAM_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "PARCELSTREAM_TOPIC_PREFIX": topics.prefix,
            "PARCELSTREAM_REDIS_URL": redis_url,
            "PARCELSTREAM_REDIS_PREFIX": redis_prefix,
            "PARCELSTREAM_NOTIFIER_GROUP_ID": group_id or unique("notifier"),
            "PARCELSTREAM_NOTIFIER_METRICS_PORT": str(metrics_port),
            "PARCELSTREAM_NOTIFIER_SESSION_TIMEOUT_MS": "6000",
            "PARCELSTREAM_NOTIFIER_RATE_PER_ENDPOINT": "1000",
            "PARCELSTREAM_NOTIFIER_RETRY_BASE_DELAY_S": "0.2",
            "PARCELSTREAM_NOTIFIER_REQUEST_TIMEOUT_S": "5",
            # The tests' webhook receivers listen on loopback: allow-listed, as an operator would.
            "PARCELSTREAM_NOTIFIER_EGRESS_ALLOW": "127.0.0.1/32,::1/128",
        }
        env.update({f"PARCELSTREAM_{key.upper()}": value for key, value in settings.items()})
        return self.start(name, python_command("consumers", "notifier"), env, metrics_port)

    def stop_all(self) -> None:
        for process in self.started:
            process.stop()


class StageFailedError(AssertionError):
    pass


def wait_for(
    condition: Callable[[], Any],
    timeout: float,
    what: str,
    processes: Sequence[StageProcess] = (),
    describe: Callable[[], str] | None = None,
) -> Any:
    """Poll ``condition`` until truthy and return its value; fail (with the processes' log tails) on
    timeout or if one of ``processes`` dies. ``describe`` adds what was seen instead to the timeout message."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        for process in processes:
            if not process.alive:
                raise StageFailedError(
                    f"{process.name} exited ({process.process.returncode}) while waiting for {what}\n"
                    + process.log_tail()
                )
        time.sleep(0.2)  # polling a condition with a deadline
    seen = f": {describe()}" if describe is not None else ""
    logs = "\n".join(process.log_tail() for process in processes)
    raise StageFailedError(f"timed out after {timeout:.0f} s waiting for {what}{seen}\n{logs}")


class TopicReader:
    """Reads a whole topic (every partition) from the beginning with assign() (no consumer-group join)."""

    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        self.topic = topic
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap_servers,
                "group.id": unique("reader"),  # required by the client; assign() joins no group
                "enable.auto.commit": False,
                "log_level": 0,
                "fetch.message.max.bytes": 10_000_000,
                "enable.partition.eof": True,
            }
        )
        partitions = sorted(self.consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        self.consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        self.records: list[tuple[bytes | None, dict[str, Any]]] = []
        #: Key of each tombstone → the number of records read before it.
        self.tombstones: dict[bytes, int] = {}
        self.at_end = dict.fromkeys(partitions, False)

    def poll(self, timeout: float = 10.0) -> int:
        """Read until every partition reports its end; returns the number of records read so far.

        The end is the consumer's EOF event, not the high watermark (Tansu can report one short)."""
        deadline = time.monotonic() + timeout
        while True:
            for message in self.consumer.consume(num_messages=1000, timeout=0.1):
                error = message.error()
                if error is None:
                    self.at_end[message.partition()] = False
                    if message.value() is None:
                        self.tombstones[message.key()] = len(self.records)
                    else:
                        self.records.append((message.key(), CODEC.decode(message.value()).value))
                elif error.code() == KafkaError._PARTITION_EOF:
                    self.at_end[message.partition()] = True
            if all(self.at_end.values()) or time.monotonic() > deadline:
                return len(self.records)

    def latest_by_key(self) -> dict[str, dict[str, Any]]:
        # A key lives in one partition, read in order: the last record of a key is its latest, unless
        # a tombstone came after it.
        latest: dict[bytes, tuple[int, dict[str, Any]]] = {}
        for index, (key, value) in enumerate(self.records):
            if key is not None:
                latest[key] = (index, value)
        return {
            key.decode(errors="replace"): value
            for key, (index, value) in latest.items()
            if self.tombstones.get(key, -1) <= index
        }

    def values(self) -> list[dict[str, Any]]:
        return [value for _key, value in self.records]

    def close(self) -> None:
        self.consumer.close()


def publish_records(bootstrap_servers: str, topics: TopicNames, records: list[Any]) -> int:
    """Publish simulator records (scans and manifests) and wait for every acknowledgement."""
    publisher = Publisher(bootstrap_servers, topics)
    for record in records:
        if record.kind == "scan":
            publisher.publish_scan(record.value)
        else:
            publisher.publish_manifest(record.value)
    report = publisher.flush()
    assert report.ok, report.failures
    return len(records)


@dataclass
class RedisServer:
    """A private redis-server on its own port, with an append-only file in ``data_dir`` so a stopped and
    restarted server has its data back (as a production Redis with persistence would)."""

    port: int
    data_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20.0) -> None:
        command = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--dir",
            str(self.data_dir),
            "--daemonize",
            "no",
        ]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        try:
            wait_for(lambda: self._answers(client), timeout, f"redis-server on port {self.port}")
        finally:
            client.close()

    def _answers(self, client: redis.Redis) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise StageFailedError(f"redis-server exited: {self.log_path.read_text(errors='replace')[-500:]}")
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        """SIGTERM: Redis finishes the append-only file and exits; clients then get connection refused."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
