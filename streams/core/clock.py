"""The event-time clock that SLA timers run on.

Now = the latest event time seen + the wall time passed since it was seen × ``speed``. Speed 1 in
production; the demo uses the simulator's time compression, so simulated deadlines pass while the
simulated day runs. It never goes backwards: when a new latest event lands below the running
clock (a late-stamped scan, or speed > real pace), the clock holds until it catches up.
"""

from __future__ import annotations


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
