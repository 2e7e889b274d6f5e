"""Fixtures of the reliability tests: stage processes (worker, projector, notifier) launched on the
test's own topic prefix, Redis prefix and consumer groups, a private redis-server, topic readers and
the notifier tests' real webhook receiver. Everything started here is stopped after the test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from deploy.embedded import free_port
from schemas.topics import TopicNames
from tests.conftest import unique
from tests.consumers.conftest import tracking_server  # noqa: F401 (fixture: the tracking app on uvicorn)
from tests.consumers.notifier.conftest import WebhookReceiver
from tests.reliability.stages import PARTITIONS, RedisServer, StageProcess, TopicReader, python_command


@dataclass
class StageLauncher:
    """Starts stage processes; ``stop_all`` (run by the fixture) stops every one still running."""

    bootstrap_servers: str
    log_dir: Path
    started: list[StageProcess] = field(default_factory=list)

    def _start(self, name: str, command: list[str], env: dict[str, str], metrics_port: int) -> StageProcess:
        log_path = self.log_dir / f"{name}-{len(self.started)}.log"
        process = StageProcess(name, command, log_path, env, metrics_port)
        self.started.append(process)
        return process

    def worker(self, topics: TopicNames, name: str = "worker", clock_speed: float = 1.0) -> StageProcess:
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
            "info",
        )
        return self._start(name, command, {}, metrics_port)

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
        return self._start(name, command, {}, metrics_port)

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
        }
        env.update({f"PARCELSTREAM_{key.upper()}": value for key, value in settings.items()})
        return self._start(name, python_command("consumers", "notifier"), env, metrics_port)

    def stop_all(self) -> None:
        for process in self.started:
            process.stop()


@pytest.fixture
def stages(bootstrap_servers: str, tmp_path: Path) -> Iterator[StageLauncher]:
    launcher = StageLauncher(bootstrap_servers, tmp_path)
    try:
        yield launcher
    finally:
        launcher.stop_all()


@pytest.fixture
def readers(bootstrap_servers: str) -> Iterator[Callable[[str], TopicReader]]:
    opened: list[TopicReader] = []

    def open_reader(topic: str) -> TopicReader:
        reader = TopicReader(bootstrap_servers, topic)
        opened.append(reader)
        return reader

    try:
        yield open_reader
    finally:
        for reader in opened:
            reader.close()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test alone (on a free port, AOF in tmp_path): it may be stopped and restarted."""
    data_dir = tmp_path / "redis-data"
    data_dir.mkdir()
    server = RedisServer(free_port(), data_dir, tmp_path / "redis.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """The notifier tests' real receiver: checks signatures and records every request."""
    receiver = WebhookReceiver()
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()
