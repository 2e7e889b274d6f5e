"""The event-time clock that SLA timers run on.

Now = the latest event time seen + the wall time passed since it was seen × ``speed``. Speed 1 in
production; the demo uses the simulator's time compression, so simulated deadlines pass while the
simulated day runs. It never goes backwards: when a new latest event lands below the running
clock (a late-stamped scan, or speed > real pace), the clock holds until it catches up.

Outliers: event times outside the plausible range are dead-lettered before they reach the clock
(``schemas/event_time.py``), but within it one scan could still move the clock up to a day ahead
and make every deadline of that day due at once. A ``bounded`` clock (the worker's) at speed 1
never runs ahead of the wall clock: a later event moves it only up to the wall, and ``observe``
reports one more than ``MAX_LEAD_MS`` beyond it as a refused jump (the worker counts them in
``parcelstream_sla_clock_jumps_refused_total``). Honest time needs no more: scans lie in the past
of the wall clock, so a backlog still moves the clock as fast as it is read, however sparse. At
another speed (the demo's compressed time) event time has no wall to be bounded by: anchoring it
to the first event seen would hold a restarted worker's clock back by its replayed backlog for
good, so only the event-time bounds apply there (judged on this clock).
"""

from __future__ import annotations

from typing import Final

#: How far beyond its limit an event may lie before ``observe`` reports a refused jump (carriers'
#: clocks run a little ahead; the clock is held at the limit either way).
MAX_LEAD_MS: Final = 15 * 60 * 1000


class EventClock:
    def __init__(self, speed: float = 1.0, bounded: bool = False) -> None:
        if speed < 0:
            raise ValueError(f"clock speed must be >= 0, got {speed}")
        self.speed = speed
        self.bounded = bounded
        self._max_event_ms: int | None = None
        self._wall_at_max_ms = 0
        self._last_now_ms = 0

    @property
    def started(self) -> bool:
        """Whether any event was observed (before that, ``now_ms`` is 0)."""
        return self._max_event_ms is not None

    def limit_ms(self, wall_ms: int) -> int | None:
        """The latest event time the clock may show at ``wall_ms``: the wall clock for a bounded
        clock at speed 1, else None (no limit)."""
        return wall_ms if self.bounded and self.speed == 1 else None

    def observe(self, event_time_ms: int, wall_ms: int) -> bool:
        """Record a scan's event time, seen at wall time ``wall_ms``; False when it lay more than
        ``MAX_LEAD_MS`` beyond the limit (the clock then moved only up to the limit)."""
        limit = self.limit_ms(wall_ms)
        accepted = limit is None or event_time_ms - limit <= MAX_LEAD_MS
        if limit is not None:
            event_time_ms = min(event_time_ms, limit)
        if self._max_event_ms is None or event_time_ms > self._max_event_ms:
            self._max_event_ms = event_time_ms
            self._wall_at_max_ms = wall_ms
        return accepted

    def now_ms(self, wall_ms: int) -> int:
        """Event-time now at wall time ``wall_ms``; 0 before the first ``observe``."""
        if self._max_event_ms is None:
            return self._last_now_ms
        elapsed = max(0, wall_ms - self._wall_at_max_ms)
        now = self._max_event_ms + int(elapsed * self.speed)
        limit = self.limit_ms(wall_ms)
        if limit is not None:
            now = min(now, limit)
        self._last_now_ms = max(self._last_now_ms, now)
        return self._last_now_ms
