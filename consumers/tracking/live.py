"""Live updates: one Redis pub/sub connection per tracking process, shared by every open stream.

Each browser following a parcel holds a server-sent-events stream. Before, each stream opened its
own pub/sub connection, so open tabs could exhaust Redis' client limit, which every stage shares.
Here one connection subscribes to each followed parcel's channel once (reference-counted) and a
single reader task hands messages to the streams' queues. Streams are capped per process
(``PARCELSTREAM_TRACKING_MAX_STREAMS``, beyond: 503) and per client address
(``..._MAX_STREAMS_PER_CLIENT``, beyond: 429). A stream that falls behind loses its oldest
messages, never blocks the others: each message is a whole parcel view, so the newest is enough.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Final

import redis.asyncio as aioredis
from prometheus_client import Counter as MetricCounter
from prometheus_client import Gauge

log = logging.getLogger(__name__)

#: Messages a stream may have waiting before its oldest are dropped.
QUEUE_SIZE: Final = 16
#: Seconds a new stream waits for Redis to confirm its subscription.
SUBSCRIBE_TIMEOUT_S: Final = 5.0

LIVE_STREAMS = Gauge("parcelstream_tracking_live_streams", "Live-update streams open in this tracking process")
LIVE_STREAMS_REFUSED = MetricCounter(
    "parcelstream_tracking_live_streams_refused_total",
    "Live-update streams refused: process_limit or client_limit",
    ["reason"],
)


class StreamRefusedError(Exception):
    def __init__(self, reason: str, status_code: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code


@dataclass
class _Channel:
    queues: set[asyncio.Queue[bytes]] = field(default_factory=set)
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)


class Reservation:
    """One counted stream; ``release`` is idempotent (called when the stream ends, and again by a
    finaliser in case the stream was never started: a client gone before the first byte)."""

    def __init__(self, hub: LiveHub, client: str) -> None:
        self._hub = hub
        self._client = client
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._hub._release(self._client)


class LiveHub:
    """The process's one pub/sub connection and its streams."""

    def __init__(self, redis: aioredis.Redis, max_streams: int, max_per_client: int) -> None:
        self.redis = redis
        self.max_streams = max_streams
        self.max_per_client = max_per_client
        self._pubsub = redis.pubsub()
        self._channels: dict[str, _Channel] = {}
        self._clients: Counter[str] = Counter()
        self._streams = 0
        self._lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None

    @property
    def open_streams(self) -> int:
        return self._streams

    def reserve(self, client: str) -> Reservation:
        """Count a stream for ``client``, or raise StreamRefusedError when a cap is reached."""
        if self._streams >= self.max_streams:
            LIVE_STREAMS_REFUSED.labels("process_limit").inc()
            raise StreamRefusedError("too many live-update streams on this server; retry later", 503)
        if self._clients[client] >= self.max_per_client:
            LIVE_STREAMS_REFUSED.labels("client_limit").inc()
            raise StreamRefusedError(
                f"at most {self.max_per_client} live-update streams per client; close one first", 429
            )
        self._streams += 1
        self._clients[client] += 1
        LIVE_STREAMS.set(self._streams)
        return Reservation(self, client)

    def _release(self, client: str) -> None:
        self._streams -= 1
        self._clients[client] -= 1
        if self._clients[client] <= 0:
            del self._clients[client]  # the counter holds only clients with open streams
        LIVE_STREAMS.set(self._streams)

    @contextlib.asynccontextmanager
    async def follow(self, channel: str) -> AsyncIterator[asyncio.Queue[bytes]]:
        """A queue of the channel's messages, subscribed (and confirmed by Redis) on entry."""
        queue: asyncio.Queue[bytes] = asyncio.Queue(QUEUE_SIZE)
        async with self._lock:
            entry = self._channels.get(channel)
            if entry is None:
                entry = self._channels[channel] = _Channel()
                try:
                    await self._pubsub.subscribe(channel)
                except BaseException:
                    del self._channels[channel]  # not subscribed: the next stream tries again
                    raise
            entry.queues.add(queue)
            if self._reader is None or self._reader.done():
                self._reader = asyncio.create_task(self._read(), name="tracking-live-reader")
        try:
            # Confirmed before the caller reads the current state, so no change falls in between.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(entry.subscribed.wait(), SUBSCRIBE_TIMEOUT_S)
            yield queue
        finally:
            async with self._lock:
                entry.queues.discard(queue)
                if not entry.queues and self._channels.get(channel) is entry:
                    del self._channels[channel]
                    with contextlib.suppress(aioredis.RedisError):
                        await self._pubsub.unsubscribe(channel)

    async def _read(self) -> None:
        while True:  # for the app's lifetime: a channel followed later needs it again
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except aioredis.RedisError as error:
                log.warning("tracking: live updates' Redis connection failed (%s); retrying", type(error).__name__)
                await asyncio.sleep(1.0)
                continue
            if message is None:
                continue
            channel = message["channel"].decode() if isinstance(message["channel"], bytes) else message["channel"]
            entry = self._channels.get(channel)
            if entry is None:
                continue
            if message["type"] == "subscribe":
                entry.subscribed.set()
            elif message["type"] == "message":
                for queue in entry.queues:
                    if queue.full():
                        queue.get_nowait()  # the oldest view goes: the newest is the one that counts
                    queue.put_nowait(message["data"])

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._pubsub.aclose()
