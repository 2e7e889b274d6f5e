"""Stage processes for the reliability tests: the worker, projector, notifier and a private Redis,
each a real OS process with its own log file, stopped in ``finally`` by the fixtures; plus readers of
whole topics (``assign()``, no group join) and a condition poller."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from producers.publisher import Publisher
from schemas.codec import default_codec
from schemas.topics import TopicNames
from tests.conftest import unique

REPO_ROOT = Path(__file__).resolve().parents[2]
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

    def rss_bytes(self) -> int:
        """Resident memory of the process (Linux /proc)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0


class StageFailedError(AssertionError):
    pass


def wait_for(
    condition: Callable[[], Any], timeout: float, what: str, processes: list[StageProcess] | None = None
) -> Any:
    """Poll ``condition`` until truthy; fail (with the processes' log tails) on timeout or if one dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        for process in processes or []:
            if not process.alive:
                raise StageFailedError(
                    f"{process.name} exited ({process.process.returncode}) while waiting for {what}\n"
                    + process.log_tail()
                )
        time.sleep(0.2)  # polling a condition with a deadline
    logs = "\n".join(process.log_tail() for process in processes or [])
    raise StageFailedError(f"timed out after {timeout:.0f} s waiting for {what}\n{logs}")


class TopicReader:
    """Reads a whole topic from the beginning with assign() (no consumer-group join)."""

    def __init__(self, bootstrap_servers: str, topic: str, partitions: int = PARTITIONS) -> None:
        self.topic = topic
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap_servers,
                "group.id": unique("reader"),
                "enable.auto.commit": False,
                "log_level": 0,
                "fetch.message.max.bytes": 10_000_000,
                "enable.partition.eof": True,
            }
        )
        self.consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        self.records: list[tuple[bytes | None, dict[str, Any]]] = []
        self.at_end = dict.fromkeys(range(partitions), False)

    def poll(self, timeout: float = 10.0) -> int:
        """Read until every partition reports its end; returns the number of records read so far.

        The end is the consumer's EOF event, not the high watermark (Tansu can report one short)."""
        deadline = time.monotonic() + timeout
        while True:
            for message in self.consumer.consume(num_messages=1000, timeout=0.1):
                error = message.error()
                if error is None:
                    self.at_end[message.partition()] = False
                    self.records.append((message.key(), CODEC.decode(message.value()).value))
                elif error.code() == KafkaError._PARTITION_EOF:
                    self.at_end[message.partition()] = True
            if all(self.at_end.values()) or time.monotonic() > deadline:
                return len(self.records)

    def latest_by_key(self) -> dict[str, dict[str, Any]]:
        # A key lives in one partition, read in order: the last record of a key is its latest.
        return {key.decode(errors="replace"): value for key, value in self.records if key is not None}

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


def python_command(*args: str) -> list[str]:
    return [sys.executable, "-m", *args]
