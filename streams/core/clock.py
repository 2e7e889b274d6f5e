"""The event-time clock that SLA timers run on.

Now = the latest event time seen + the wall time passed since it was seen × ``speed``. Speed 1 in
production; the demo uses the simulator's time compression, so simulated deadlines pass while the
simulated day runs. It never goes backwards: when a new latest event lands below the running
clock (a late-stamped scan, or speed > real pace), the clock holds until it catches up.

Outliers: event times outside the plausible range are dead-lettered before they reach the clock
(``schemas/event_time.py``). Within it, one scan can still jump the clock by up to a day and make
deadlines due that are not; so the worker asks ``jump_refused`` before it lets a scan move the
clock: a jump of more than ``MIN_CHECKED_JUMP_MS`` that would make more than ``max_due_share`` of
the pending deadlines (and at least ``MIN_REFUSED_DUE``) due at once is refused (counted in
``parcelstream_sla_clock_jumps_refused_total``). Honest time moves in small steps (the clock runs
with wall time between scans, and the timer takes the due deadlines every second), so only a
jump can make a large share due at once.
"""

from __future__ import annotations

from typing import Final

#: Share of the pending SLA deadlines that one clock jump may make due (PARCELSTREAM_SLA_CLOCK_MAX_DUE_SHARE).
DEFAULT_MAX_DUE_SHARE: Final = 0.5
#: A jump that makes fewer deadlines due is never refused (a handful of parcels may honestly share a deadline).
MIN_REFUSED_DUE: Final = 10
#: Smaller steps ahead of the clock are not checked: honest traffic moves it by seconds, and the
#: check walks the due part of the deadline schedule.
MIN_CHECKED_JUMP_MS: Final = 15 * 60 * 1000


def refusal_threshold(pending: int, max_due_share: float) -> int:
    """Most deadlines one clock jump may make due, with ``pending`` deadlines scheduled."""
    return max(MIN_REFUSED_DUE - 1, int(pending * max_due_share))


def jump_refused(due: int, threshold: int) -> bool:
    """Whether a jump that makes ``due`` deadlines due at once is refused (``due`` may be counted
    only up to ``threshold + 1``)."""
    return due > threshold


class EventClock:
    def __init__(self, speed: float = 1.0) -> None:
        if speed < 0:
            raise ValueError(f"clock speed must be >= 0, got {speed}")
        self.speed = speed
        self._max_event_ms: int | None = None
        self._wall_at_max_ms = 0
        self._last_now_ms = 0

    @property
    def started(self) -> bool:
        """Whether any event was observed (before that, ``now_ms`` is 0)."""
        return self._max_event_ms is not None

    def observe(self, event_time_ms: int, wall_ms: int) -> None:
        """Record a scan's event time, seen at wall time ``wall_ms``."""
        if self._max_event_ms is None or event_time_ms > self._max_event_ms:
            self._max_event_ms = event_time_ms
            self._wall_at_max_ms = wall_ms

    def now_ms(self, wall_ms: int) -> int:
        """Event-time now at wall time ``wall_ms``; 0 before the first ``observe``."""
        if self._max_event_ms is None:
            return self._last_now_ms
        elapsed = max(0, wall_ms - self._wall_at_max_ms)
        now = self._max_event_ms + int(elapsed * self.speed)
        self._last_now_ms = max(self._last_now_ms, now)
        return self._last_now_ms
