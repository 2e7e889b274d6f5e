from __future__ import annotations

import pytest

from streams.core.clock import MIN_REFUSED_DUE, EventClock, jump_refused, refusal_threshold

EVENT = 1_767_225_600_000


def test_now_is_zero_before_any_event() -> None:
    clock = EventClock()
    assert not clock.started
    assert clock.now_ms(123_456) == 0


def test_now_is_latest_event_plus_wall_time_since_it_was_seen() -> None:
    clock = EventClock(speed=1.0)
    clock.observe(EVENT, wall_ms=10_000)
    assert clock.now_ms(10_000) == EVENT
    assert clock.now_ms(12_500) == EVENT + 2_500


def test_speed_compresses_time() -> None:
    clock = EventClock(speed=60.0)
    clock.observe(EVENT, wall_ms=0)
    assert clock.now_ms(1_000) == EVENT + 60_000


def test_older_events_do_not_move_the_clock() -> None:
    clock = EventClock()
    clock.observe(EVENT, wall_ms=0)
    clock.observe(EVENT - 3_600_000, wall_ms=1_000)
    assert clock.now_ms(1_000) == EVENT + 1_000


def test_never_goes_backwards() -> None:
    clock = EventClock(speed=100.0)
    clock.observe(EVENT, wall_ms=0)
    ahead = clock.now_ms(1_000)  # EVENT + 100 s
    clock.observe(EVENT + 10_000, wall_ms=1_000)  # a newer event, but behind the running clock
    assert clock.now_ms(1_000) == ahead
    assert clock.now_ms(1_100) == ahead  # computed EVENT + 20 s: held
    assert clock.now_ms(2_000) == EVENT + 10_000 + 100_000
    assert clock.now_ms(500) == EVENT + 110_000  # wall clock stepping back does not either


def test_negative_speed_is_refused() -> None:
    with pytest.raises(ValueError, match="speed"):
        EventClock(speed=-1)


def test_clock_jump_refused_beyond_a_share_of_the_pending_deadlines() -> None:
    threshold = refusal_threshold(pending=200, max_due_share=0.5)
    assert threshold == 100
    assert jump_refused(101, threshold) and not jump_refused(100, threshold)
    # A handful of parcels may honestly fall due together: never refused below MIN_REFUSED_DUE.
    small = refusal_threshold(pending=4, max_due_share=0.5)
    assert not jump_refused(4, small) and small == MIN_REFUSED_DUE - 1
