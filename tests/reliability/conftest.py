"""Fixtures of the reliability tests: a private redis-server, the notifier tests' real webhook receiver
and the tracking app on uvicorn. Stage processes and topic readers are the shared ``stages`` and
``readers`` fixtures of ``tests/conftest.py``. Everything started here is stopped after the test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.embedded import free_port
from tests.consumers.conftest import tracking_server  # noqa: F401 (fixture: the tracking app on uvicorn)
from tests.consumers.notifier.conftest import webhook_receiver  # noqa: F401 (fixture: checks signatures, records requests)
from tests.stages import RedisServer


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
