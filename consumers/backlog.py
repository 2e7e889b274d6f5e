"""The backlog per hub stage, read from the read model's stage indexes for the gauges.

The projector keeps one sorted set per stage (and per stage and route) of the parcels in it, scored
by when they entered the stage (``consumers/read_model.py``: ``plan_backlog``, ``backlog_removals``).
Counting is then ZCARD, the oldest is ZRANGE 0 0: a handful of commands per stage, no key scan, and
the numbers are right after a restart because they live in Redis, not in the process.

Ages are in event time: "now" is the later of the wall clock and the newest event the read model
holds (the newest score of the status indexes), so a demo whose simulated clock runs ahead of the
wall clock still shows how long a parcel has waited in its own time line.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aioredis

from consumers import metrics
from consumers.read_model import Keys
from schemas.metrics import RouteLabels
from schemas.stages import STAGES
from schemas.statuses import STATUSES


@dataclass(frozen=True)
class StageBacklog:
    stage: str
    parcels: int
    #: Parcels per route (the route text as stored; "unknown" when the parcel had none).
    routes: dict[str, int]
    #: Event time (ms) the longest-waiting parcel entered the stage; None when empty.
    oldest_entered_ms: int | None

    def oldest_seconds(self, now_ms: int) -> float:
        return max(now_ms - self.oldest_entered_ms, 0) / 1000 if self.oldest_entered_ms is not None else 0.0


@dataclass(frozen=True)
class Backlog:
    stages: list[StageBacklog]
    #: The reference "now" of the ages (see the module doc).
    now_ms: int

    def as_dict(self) -> list[dict[str, object]]:
        return [
            {
                "stage": stage.stage,
                "parcels": stage.parcels,
                "oldest_seconds": round(stage.oldest_seconds(self.now_ms), 1),
                "oldest_entered_ms": stage.oldest_entered_ms,
            }
            for stage in self.stages
        ]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _queue_stage_reads(pipe: Any, keys: Keys) -> None:
    for stage in STAGES:
        pipe.zcard(keys.backlog(stage))
        pipe.zrange(keys.backlog(stage), 0, 0, withscores=True)
        pipe.zrange(keys.backlog_routes(stage), 0, -1)
    for status in STATUSES:
        pipe.zrange(keys.status_index(status), -1, -1, withscores=True)


def _routes_of(replies: list[Any]) -> dict[str, list[str]]:
    return {stage: [_text(route) for route in replies[3 * i + 2]] for i, stage in enumerate(STAGES)}


def _queue_route_reads(pipe: Any, keys: Keys, routes_of: dict[str, list[str]]) -> None:
    for stage in STAGES:
        for route in routes_of[stage]:
            pipe.zcard(keys.backlog_route(stage, route))


def _backlog(replies: list[Any], routes_of: dict[str, list[str]], route_counts: list[Any], wall_ms: int) -> Backlog:
    counts = iter(route_counts)
    stages = []
    for i, stage in enumerate(STAGES):
        total, oldest = replies[3 * i], replies[3 * i + 1]
        routes = {route: int(next(counts)) for route in routes_of[stage]}
        oldest_ms = int(oldest[0][1]) if oldest else None
        stages.append(StageBacklog(stage, int(total), {route: n for route, n in routes.items() if n}, oldest_ms))
    newest = [int(score) for reply in replies[3 * len(STAGES) :] for _member, score in reply]
    return Backlog(stages, max([wall_ms, *newest]))


def read_backlog(client: redis.Redis, keys: Keys, wall_ms: int | None = None) -> Backlog:
    """Count each stage's parcels (in all and per route) and find its oldest, in two round trips."""
    wall_ms = wall_ms if wall_ms is not None else time.time_ns() // 1_000_000
    with client.pipeline(transaction=False) as pipe:
        _queue_stage_reads(pipe, keys)
        replies = pipe.execute()
    routes_of = _routes_of(replies)
    with client.pipeline(transaction=False) as pipe:
        _queue_route_reads(pipe, keys, routes_of)
        route_counts = pipe.execute()
    return _backlog(replies, routes_of, route_counts, wall_ms)


async def read_backlog_async(client: aioredis.Redis, keys: Keys, wall_ms: int | None = None) -> Backlog:
    """``read_backlog`` on an asyncio client (the tracking service)."""
    wall_ms = wall_ms if wall_ms is not None else time.time_ns() // 1_000_000
    async with client.pipeline(transaction=False) as pipe:
        _queue_stage_reads(pipe, keys)
        replies = await pipe.execute()
    routes_of = _routes_of(replies)
    async with client.pipeline(transaction=False) as pipe:
        _queue_route_reads(pipe, keys, routes_of)
        route_counts = await pipe.execute()
    return _backlog(replies, routes_of, route_counts, wall_ms)


class BacklogGauges:
    """Sets ``parcelstream_backlog_parcels`` and ``parcelstream_backlog_oldest_seconds`` from a
    ``Backlog``; route labels bounded like the worker's (``schemas.metrics.RouteLabels``)."""

    def __init__(self, route_labels: RouteLabels | None = None) -> None:
        self.route_labels = route_labels or RouteLabels()
        self._shown: set[tuple[str, str]] = set()

    def export(self, backlog: Backlog) -> None:
        for stage in backlog.stages:
            per_label: dict[str, int] = defaultdict(int)
            for route, parcels in stage.routes.items():
                per_label[self.route_labels(route)] += parcels
            # A route that emptied shows 0 rather than its last count.
            for shown_stage, label in self._shown:
                if shown_stage == stage.stage:
                    per_label.setdefault(label, 0)
            for label, parcels in per_label.items():
                metrics.BACKLOG_PARCELS.labels(stage.stage, label).set(parcels)
                self._shown.add((stage.stage, label))
            metrics.BACKLOG_OLDEST.labels(stage.stage).set(stage.oldest_seconds(backlog.now_ms))
