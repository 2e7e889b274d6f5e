"""Access to parcels (issue 14): failed look-ups limited per tracking number and per client (then
only the signed link works), nothing but the postcode hash read before deciding, live-update streams
capped over one shared pub/sub connection, /metrics off the public port, /healthz without details."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
import redis

from consumers.settings import ConsumerSettings
from consumers.tracking.tokens import mint_token
from deploy.embedded import free_port
from tests.consumers.helpers import OPERATIONS_KEY, TRACKING_SECRET, parcel_state, seed
from tests.stages import wait_for

pytestmark = pytest.mark.integration

TN = "LX123456785CN"
UNKNOWN = "LX999999999CN"
Server = Callable[[ConsumerSettings], str]


def _settings(redis_url: str, redis_prefix: str, **overrides: Any) -> ConsumerSettings:
    return ConsumerSettings(
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        tracking_secret=TRACKING_SECRET,
        operations_key=OPERATIONS_KEY,
        **overrides,
    )


@pytest.fixture
def client_for(tracking_server: Server, redis_url: str, redis_prefix: str) -> Iterator[Callable[..., httpx.Client]]:
    with ExitStack() as stack:

        def make(**overrides: Any) -> httpx.Client:
            url = tracking_server(_settings(redis_url, redis_prefix, **overrides))
            return stack.enter_context(httpx.Client(base_url=url, timeout=10))

        yield make


def test_brute_failed_lookups_lock_postcodes_per_parcel_then_only_the_signed_link_works(
    client_for: Callable[..., httpx.Client], redis_client: redis.Redis, redis_prefix: str
) -> None:
    api = client_for(tracking_max_failed_lookups_per_parcel=3, tracking_max_failed_lookups_per_client=100)
    seed(redis_client, redis_prefix, parcel_state(TN, 2))
    assert api.get(f"/v1/parcels/{TN}", params={"postcode": "1000BX"}).status_code == 200
    for guess in ("1000", "1001", "1002"):
        assert api.get(f"/v1/parcels/{TN}", params={"postcode": guess}).status_code == 404
    locked = api.get(f"/v1/parcels/{TN}", params={"postcode": "1000BX"})  # even the right postcode now
    assert locked.status_code == 429
    assert "link" in locked.json()["detail"]
    assert int(locked.headers["retry-after"]) > 0
    assert api.get(f"/v1/parcels/{TN}/events", params={"postcode": "1000BX"}).status_code == 429
    by_link = api.get(f"/v1/parcels/{TN}", params={"token": mint_token(TRACKING_SECRET, TN)})
    assert by_link.status_code == 200

    # Unknown tracking numbers lock the same way: the lock tells nothing about which parcels exist.
    for guess in ("1000", "1001", "1002"):
        assert api.get(f"/v1/parcels/{UNKNOWN}", params={"postcode": guess}).status_code == 404
    assert api.get(f"/v1/parcels/{UNKNOWN}", params={"postcode": "1003"}).status_code == 429
    # Every counter expires with its window.
    counters = list(redis_client.scan_iter(match=f"{redis_prefix}:tracking:failed:*"))
    assert counters and all(0 < redis_client.ttl(name) <= 900 for name in counters)


def test_brute_failed_lookups_lock_a_client_across_parcels_until_the_window_ends(
    client_for: Callable[..., httpx.Client], redis_client: redis.Redis, redis_prefix: str
) -> None:
    api = client_for(
        tracking_max_failed_lookups_per_parcel=100,
        tracking_max_failed_lookups_per_client=4,
        tracking_failed_lookup_window=2,
    )
    seed(redis_client, redis_prefix, parcel_state(TN, 2))
    for number in range(4):  # one guess on each of four parcels: the parcel limit never trips
        assert api.get(f"/v1/parcels/LX00000000{number}CN", params={"postcode": "4000"}).status_code == 404
    assert api.get(f"/v1/parcels/{TN}", params={"postcode": "1000BX"}).status_code == 429
    assert api.get(f"/v1/parcels/{TN}", params={"token": mint_token(TRACKING_SECRET, TN)}).status_code == 200
    wait_for(
        lambda: api.get(f"/v1/parcels/{TN}", params={"postcode": "1000BX"}).status_code == 200,
        10,
        "the client's window to end",
    )


class _Monitor:
    """Redis commands touching ``prefix`` while it runs (MONITOR on its own connection)."""

    def __init__(self, redis_url: str, prefix: str) -> None:
        self.prefix = prefix
        self.commands: list[str] = []
        self._client = redis.Redis.from_url(redis_url, decode_responses=True)
        self._sentinel = f"{prefix}:monitor-done"
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with self._client.monitor() as monitor:
            self._ready.set()
            for entry in monitor.listen():
                command = entry["command"]
                if self._sentinel in command:
                    return
                if self.prefix in command:
                    self.commands.append(command)

    def __enter__(self) -> _Monitor:
        self._ready = threading.Event()
        self._thread.start()
        assert self._ready.wait(5)
        return self

    def __exit__(self, *_: object) -> None:
        self._client.get(self._sentinel)
        self._thread.join(timeout=10)
        self._client.close()


def test_brute_only_the_postcode_hash_is_read_before_deciding(
    client_for: Callable[..., httpx.Client], redis_client: redis.Redis, redis_url: str, redis_prefix: str
) -> None:
    """An existing parcel with a wrong postcode and an unknown parcel cost the same Redis commands
    (the whole parcel used to be read first: a 404 of an existing parcel took longer)."""
    api = client_for()
    seed(redis_client, redis_prefix, parcel_state(TN, 2))
    api.get("/healthz")
    traces = []
    for tracking_number in (TN, UNKNOWN):
        with _Monitor(redis_url, redis_prefix) as monitor:
            assert api.get(f"/v1/parcels/{tracking_number}", params={"postcode": "9999"}).status_code == 404
        traces.append([command.replace(tracking_number, "TN") for command in monitor.commands])
    assert traces[0] == traces[1]
    assert not any("HGETALL" in command.upper() for command in traces[0])
    assert f"HGET {redis_prefix}:parcel:TN postcode_hash" in traces[0]
    with _Monitor(redis_url, redis_prefix) as monitor:
        assert api.get(f"/v1/parcels/{TN}", params={"postcode": "1000BX"}).status_code == 200
    assert f"HGETALL {redis_prefix}:parcel:{TN}" in monitor.commands  # read once the look-up is authorised


def _open_stream(api: httpx.Client, stack: ExitStack) -> httpx.Response:
    token = mint_token(TRACKING_SECRET, TN)
    return stack.enter_context(api.stream("GET", f"/v1/parcels/{TN}/events", params={"token": token}))


def _next_event(lines: Iterator[str]) -> dict[str, Any]:
    # One line iterator per stream: dropping one closes the connection under it.
    for line in lines:
        if line.startswith("data: "):
            return json.loads(line.removeprefix("data: "))
    raise AssertionError("the stream ended")


def test_live_streams_share_one_subscription_and_are_capped_per_client(
    client_for: Callable[..., httpx.Client], redis_client: redis.Redis, redis_prefix: str
) -> None:
    api = client_for(tracking_max_streams=10, tracking_max_streams_per_client=2)
    seed(redis_client, redis_prefix, parcel_state(TN, 2))
    channel = f"{redis_prefix}:updates:{TN}"
    with ExitStack() as stack:
        first, second = _open_stream(api, stack), _open_stream(api, stack)
        assert (first.status_code, second.status_code) == (200, 200)
        first_lines, second_lines = first.iter_lines(), second.iter_lines()
        assert _next_event(first_lines)["version"] == 2 and _next_event(second_lines)["version"] == 2
        # Two streams, one pub/sub connection subscribed to the parcel's channel.
        assert redis_client.pubsub_numsub(channel) == [(channel, 1)]
        third = api.get(f"/v1/parcels/{TN}/events", params={"token": mint_token(TRACKING_SECRET, TN)})
        assert third.status_code == 429
        seed(redis_client, redis_prefix, parcel_state(TN, 3, "OutForDelivery"))
        assert _next_event(first_lines)["version"] == 3 and _next_event(second_lines)["version"] == 3
    # Closed streams free their places and the channel.
    wait_for(lambda: redis_client.pubsub_numsub(channel) == [(channel, 0)], 10, "the channel to be unsubscribed")
    with ExitStack() as stack:
        assert _open_stream(api, stack).status_code == 200


def test_live_streams_are_capped_per_process(
    client_for: Callable[..., httpx.Client], redis_client: redis.Redis, redis_prefix: str
) -> None:
    api = client_for(tracking_max_streams=2, tracking_max_streams_per_client=10)
    seed(redis_client, redis_prefix, parcel_state(TN, 2))
    with ExitStack() as stack:
        assert _open_stream(api, stack).status_code == 200
        assert _open_stream(api, stack).status_code == 200
        refused = api.get(f"/v1/parcels/{TN}/events", params={"token": mint_token(TRACKING_SECRET, TN)})
        assert refused.status_code == 503


def test_metrics_are_not_on_the_public_port_and_healthz_names_no_address(
    tracking_server: Server, redis_url: str, redis_prefix: str
) -> None:
    down = f"redis://127.0.0.1:{free_port()}/0"
    with httpx.Client(base_url=tracking_server(_settings(down, redis_prefix)), timeout=10) as api:
        assert api.get("/metrics").status_code == 404
        health = api.get("/healthz")
        assert health.status_code == 503
        assert health.json() == {"detail": "Redis does not answer"}
        assert "127.0.0.1" not in health.text and "Connect" not in health.text
