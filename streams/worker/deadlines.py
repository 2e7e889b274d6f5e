"""The worker's schedule of due times: which parcel or unit needs a decision next.

A min-heap of ``(deadline_ms, tracking_number)``. A parcel's deadline moves with every scan; the old
heap entry stays where it is and is skipped when it comes out (``_current`` holds the one that
counts), which keeps rescheduling O(log n). Keys are tracking numbers and ``unit:<id>`` of handling
units; the time is whatever is due next (SLA deadline, expiry, archiving, a unit's end). In memory:
the worker keeps the same times in its small ``timers`` table, written when a time moves, and
rebuilds this heap from it after every partition assignment (never decoding a parcel).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable


class DeadlineHeap:
    def __init__(self) -> None:
        self._heap: list[tuple[int, str]] = []
        self._current: dict[str, int] = {}

    def __len__(self) -> int:
        """Parcels with a pending deadline."""
        return len(self._current)

    def __contains__(self, tracking_number: object) -> bool:
        """Whether the parcel has a pending deadline."""
        return tracking_number in self._current

    def schedule(self, tracking_number: str, deadline_ms: int | None) -> None:
        """Set (or with ``None`` clear) the parcel's next deadline."""
        if deadline_ms is None:
            self._current.pop(tracking_number, None)
            return
        if self._current.get(tracking_number) == deadline_ms:
            return
        self._current[tracking_number] = deadline_ms
        heapq.heappush(self._heap, (deadline_ms, tracking_number))
        if len(self._heap) > 2 * len(self._current) + 1024:
            self._compact()

    def due_of(self, key: str) -> int | None:
        """The key's scheduled time, None when nothing is scheduled."""
        return self._current.get(key)

    def pop_due(self, now_ms: int) -> list[str]:
        """Parcels whose current deadline is at or before ``now_ms``; they leave the schedule."""
        due: list[str] = []
        while self._heap and self._heap[0][0] <= now_ms:
            deadline_ms, tracking_number = heapq.heappop(self._heap)
            if self._current.get(tracking_number) == deadline_ms:
                del self._current[tracking_number]
                due.append(tracking_number)
        return due

    def rebuild(self, deadlines: Iterable[tuple[str, int | None]]) -> None:
        self._current = {number: deadline for number, deadline in deadlines if deadline is not None}
        self._compact()

    def _compact(self) -> None:
        # Drop the stale entries that rescheduling left behind.
        self._heap = [(deadline, number) for number, deadline in self._current.items()]
        heapq.heapify(self._heap)
