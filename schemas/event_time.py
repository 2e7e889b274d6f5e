"""The plausible range of a scan's event time, one rule for every stage that checks it.

A scan dated far in the future moves the stream processor's SLA clock and fires every deadline; one
dated decades back can win "earliest ORDER_CREATED". The gateway (422), the publisher CLI (dead
letter) and the worker (dead letter, for records of other producers) refuse event times outside
``[now - max_age, now + max_future]`` with the same reason code and message.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Dead-letter reason code of a scan or manifest whose event time is out of range.
EVENT_TIME_OUT_OF_RANGE: Final = "event_time_out_of_range"
DAY_MS: Final = 24 * 3600 * 1000
DEFAULT_MAX_FUTURE_MS: Final = DAY_MS
DEFAULT_MAX_AGE_MS: Final = 365 * DAY_MS


class EventTimeSettings(BaseSettings):
    """``PARCELSTREAM_MAX_FUTURE`` and ``PARCELSTREAM_MAX_AGE``, in seconds."""

    model_config = SettingsConfigDict(env_prefix="PARCELSTREAM_", extra="ignore")

    max_future: float = Field(DEFAULT_MAX_FUTURE_MS / 1000, gt=0)
    """Seconds an event time may lie ahead of the wall clock (PARCELSTREAM_MAX_FUTURE; default 1 day)."""
    max_age: float = Field(DEFAULT_MAX_AGE_MS / 1000, gt=0)
    """Seconds an event time may lie behind the wall clock (PARCELSTREAM_MAX_AGE; default 365 days)."""

    @property
    def max_future_ms(self) -> int:
        return int(self.max_future * 1000)

    @property
    def max_age_ms(self) -> int:
        return int(self.max_age * 1000)


def _iso(ms: int) -> str:
    try:
        return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return f"{ms} ms since 1970"


def _duration(ms: int) -> str:
    if ms % DAY_MS == 0:
        days = ms // DAY_MS
        return f"{days} day{'s' if days != 1 else ''}"
    return f"{ms / 1000:g} s"


def check_event_time(event_time_ms: int, now_ms: int, max_future_ms: int, max_age_ms: int) -> str | None:
    """None when ``event_time_ms`` is plausible at ``now_ms``, else the reason (one line)."""
    latest = now_ms + max_future_ms
    earliest = now_ms - max_age_ms
    if event_time_ms > latest:
        return (
            f"event time {_iso(event_time_ms)} is later than now + {_duration(max_future_ms)} ({_iso(latest)}); "
            "PARCELSTREAM_MAX_FUTURE"
        )
    if event_time_ms < earliest:
        return (
            f"event time {_iso(event_time_ms)} is older than now - {_duration(max_age_ms)} ({_iso(earliest)}); "
            "PARCELSTREAM_MAX_AGE"
        )
    return None
