"""Fixtures of the read-model and tracking tests: ParcelState records, a producer for them, the
projector in a thread and the tracking service on a real uvicorn server."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis
import uvicorn

from consumers.projector import Projector, ProjectorStats
from consumers.settings import ConsumerSettings
from consumers.tracking.app import create_app
from deploy.embedded import free_port
from schemas.topics import TopicNames
from tests.consumers.helpers import OPERATIONS_KEY, TRACKING_SECRET, StateProducer
from tests.stages import wait_for


@pytest.fixture
def state_producer(bootstrap_servers: str, topics: TopicNames) -> StateProducer:
    return StateProducer(bootstrap_servers, topics)


@pytest.fixture
def consumer_settings(
    bootstrap_servers: str, topics: TopicNames, redis_url: str, redis_prefix: str
) -> ConsumerSettings:
    return ConsumerSettings(
        bootstrap_servers=bootstrap_servers,
        topic_prefix=topics.prefix,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        projector_group_id=f"projector-{uuid.uuid4().hex[:10]}",
        tracking_secret=TRACKING_SECRET,
        operations_key=OPERATIONS_KEY,
    )


@pytest.fixture
def run_projector() -> Iterator[Callable[[ConsumerSettings], Projector]]:
    """Start a projector in a thread: ``run_projector(settings)``; every one is stopped after the test."""
    running: list[tuple[threading.Event, threading.Thread, list[BaseException]]] = []

    def start(settings: ConsumerSettings) -> Projector:
        projector = Projector(settings, batch_size=100)
        stop = threading.Event()
        errors: list[BaseException] = []
        results: list[ProjectorStats] = []

        def target() -> None:
            try:
                results.append(projector.run(stop))
            except BaseException as error:
                errors.append(error)

        thread = threading.Thread(target=target, name="projector", daemon=True)
        thread.start()
        running.append((stop, thread, errors))
        return projector

    yield start
    for stop, _thread, _errors in running:
        stop.set()
    for _stop, thread, errors in running:
        thread.join(timeout=30)
        assert not thread.is_alive(), "projector did not stop"
        assert not errors, errors


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def tracking_server() -> Iterator[Callable[[ConsumerSettings], str]]:
    """Serve the tracking app on a free port with a real uvicorn: ``base_url = tracking_server(settings)``."""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(settings: ConsumerSettings) -> str:
        port = free_port()
        config = uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="tracking", daemon=True)
        thread.start()
        servers.append((server, thread))
        wait_for(lambda: server.started or not thread.is_alive(), 15, "the tracking server to start")
        assert server.started, "tracking server did not start"
        return f"http://127.0.0.1:{port}"

    yield start
    for server, _thread in servers:
        server.should_exit = True
    for _server, thread in servers:
        thread.join(timeout=15)
        assert not thread.is_alive(), "tracking server did not stop"
