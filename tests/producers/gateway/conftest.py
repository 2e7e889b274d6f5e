"""Fixtures of the gateway tests: a real uvicorn server per test on a free port, and API keys
created in the test's own Redis prefix."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from redis.asyncio import Redis

from deploy.embedded import free_port
from producers.gateway.app import create_app
from producers.gateway.keys import IssuedKey, KeyStore
from producers.gateway.settings import GatewaySettings
from producers.publisher import Publisher
from schemas.topics import TopicNames


@dataclass(frozen=True)
class RunningGateway:
    url: str
    settings: GatewaySettings

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30.0)


def start_server(app: Any) -> tuple[uvicorn.Server, threading.Thread, str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name=f"gateway-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive(), "the gateway server stopped while starting"
        assert time.monotonic() < deadline, "the gateway server did not start within 20 s"
        time.sleep(0.02)  # polling a condition, with a deadline
    return server, thread, f"http://127.0.0.1:{port}"


def stop_server(server: uvicorn.Server, thread: threading.Thread) -> None:
    server.should_exit = True
    thread.join(timeout=30)


@pytest.fixture
def gateway_factory(
    bootstrap_servers: str, topics: TopicNames, redis_url: str, redis_prefix: str
) -> Iterator[Callable[..., RunningGateway]]:
    """``gateway_factory(publisher=None, **settings)``: a running gateway on the test's topics and
    Redis prefix; every one is stopped after the test."""
    running: list[tuple[uvicorn.Server, threading.Thread]] = []

    def make(publisher: Publisher | None = None, **overrides: Any) -> RunningGateway:
        settings = GatewaySettings(
            bootstrap_servers=bootstrap_servers,
            topic_prefix=topics.prefix,
            redis_url=redis_url,
            redis_prefix=redis_prefix,
            **overrides,
        )
        server, thread, url = start_server(create_app(settings, publisher=publisher))
        running.append((server, thread))
        return RunningGateway(url, settings)

    try:
        yield make
    finally:
        for server, thread in running:
            stop_server(server, thread)


@pytest.fixture
def create_key(redis_url: str, redis_prefix: str) -> Callable[..., IssuedKey]:
    """``create_key("CK", ["flight"])``: a key stored in the test's Redis prefix."""

    def create(carrier: str = "CK", sources: tuple[str, ...] = ("flight", "warehouse")) -> IssuedKey:
        async def run() -> IssuedKey:
            client = Redis.from_url(redis_url, decode_responses=True)
            try:
                return await KeyStore(client, redis_prefix).create(carrier, list(sources))
            finally:
                await client.aclose()

        return asyncio.run(run())

    return create


def scan(event_id: str, **overrides: Any) -> dict[str, Any]:
    """A valid native scan record of carrier CK."""
    record: dict[str, Any] = {
        "event_id": event_id,
        "tracking_number": f"LP{event_id:0>9}CN",
        "source": "flight",
        "code": "LINEHAUL_DEPARTED",
        "raw_code": "DEP",
        "carrier": "CK",
        "event_time": "2026-11-20T08:15:00+08:00",
        "location": {"code": "HGH", "kind": "airport", "country": "CN"},
    }
    record.update(overrides)
    return record
