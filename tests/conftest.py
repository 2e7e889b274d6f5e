"""Shared fixtures: one embedded broker per test session, factories for unique topics and Redis
key prefixes, so every integration test owns its topics, consumer groups and keys; stage processes
(``stages``) and whole-topic readers (``readers``) from ``tests/stages.py``, stopped after the test."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from deploy.embedded import EmbeddedBroker, check_redis, create_topics
from schemas.topics import TopicNames

if TYPE_CHECKING:
    from tests.stages import StageLauncher, TopicReader

REDIS_URL = os.environ.get("PARCELSTREAM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

#: The suite replays journeys on fixed dates from 2026-01-01 (tests/streams/builders.py T0, the
#: workers' simulations), reproducible to the millisecond. The pipeline refuses event times older than
#: PARCELSTREAM_MAX_AGE (365 days) from now; so that those dates never age out, this session (and the
#: stage processes it starts, which inherit its environment) accepts ages back to 2025-01-01 unless
#: told otherwise. Tests of the bound itself set their own.
FIXTURE_EPOCH_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z
os.environ.setdefault(
    "PARCELSTREAM_MAX_AGE", str(max(365 * 86_400, (time.time_ns() // 1_000_000 - FIXTURE_EPOCH_MS) // 1000))
)


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    """The embedded Tansu broker, started once for the whole session (or an external one given in
    PARCELSTREAM_TEST_BOOTSTRAP_SERVERS, e.g. Apache Kafka)."""
    external = os.environ.get("PARCELSTREAM_TEST_BOOTSTRAP_SERVERS")
    if external:
        _host, _, port = external.rpartition(":")
        yield EmbeddedBroker(port=int(port))
        return
    embedded = EmbeddedBroker()
    embedded.start()
    try:
        yield embedded
    finally:
        embedded.stop()


@pytest.fixture(scope="session")
def bootstrap_servers(broker: EmbeddedBroker) -> str:
    return os.environ.get("PARCELSTREAM_TEST_BOOTSTRAP_SERVERS") or broker.bootstrap_servers


@pytest.fixture
def topics_factory(bootstrap_servers: str) -> Callable[..., TopicNames]:
    """Create the pipeline's topics under a fresh prefix: ``topics_factory(partitions=4)``."""

    def make(partitions: int = 4) -> TopicNames:
        names = TopicNames(unique("t"))
        create_topics(bootstrap_servers, names.prefix, partitions)
        return names

    return make


@pytest.fixture
def topics(topics_factory: Callable[..., TopicNames]) -> TopicNames:
    return topics_factory()


@pytest.fixture(scope="session")
def redis_url() -> str:
    check_redis(REDIS_URL)
    return REDIS_URL


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A unique key prefix; every key under it is deleted after the test."""
    import redis

    prefix = unique("ps-test")
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


# tests.stages imports this module (for ``unique``): the fixtures below import it when they run.


@pytest.fixture
def stages(bootstrap_servers: str, tmp_path: Path) -> Iterator[StageLauncher]:
    """Launches stage processes (worker, projector, notifier, any command) with their logs in tmp_path;
    every one still running is stopped after the test."""
    from tests.stages import StageLauncher

    launcher = StageLauncher(bootstrap_servers, tmp_path)
    try:
        yield launcher
    finally:
        launcher.stop_all()


@pytest.fixture
def readers(bootstrap_servers: str) -> Iterator[Callable[[str], TopicReader]]:
    """``readers(topic)``: a TopicReader of the whole topic, closed after the test."""
    from tests.stages import TopicReader

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
