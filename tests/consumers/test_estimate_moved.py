"""When the estimated delivery window moved, and why: detected by the read model's pure planning
(``consumers.read_model.estimate_move`` via ``plan_write``) and said on the delivery line
(``consumers.journey.moved_text``) in every language."""

from __future__ import annotations

import json
import string
from typing import Any

import pytest

from consumers.journey import LANGUAGES, MOVED_TEXTS, delivery_line, journey, step_message
from consumers.read_model import (
    DEFAULT_ESTIMATE_MOVE_THRESHOLD_HOURS,
    HOUR_MS,
    Keys,
    StoredIndexEntry,
    plan_delete,
    plan_write,
    project,
    public_view,
)
from consumers.settings import ConsumerSettings
from tests.consumers import journeys
from tests.consumers.journeys import BASE_TIME_MS, DAY_MS, HELD_WINDOW, journey_state, window_moved

KEYS = Keys("moved")
TN = "LX123456785CN"
THRESHOLD_MS = int(DEFAULT_ESTIMATE_MOVE_THRESHOLD_HOURS * HOUR_MS)
#: The window of ``journeys.journey_state``: Wed 7 – Fri 9 Jan.
FIRST_WINDOW = {"earliest_ms": BASE_TIME_MS + 6 * DAY_MS, "latest_ms": BASE_TIME_MS + 8 * DAY_MS}


class ParcelHash:
    """One parcel's Redis hash as the projector leaves it after each plan."""

    def __init__(self) -> None:
        self.fields: dict[str, str] = {}
        self.published: list[dict[str, Any]] = []

    def stored(self) -> StoredIndexEntry | None:
        return StoredIndexEntry.from_values([self.fields.get(name) for name in StoredIndexEntry.FIELDS])

    def apply(self, state: dict[str, Any], threshold_ms: int = THRESHOLD_MS) -> bool:
        """Plan and apply ``state``; False when the plan changes nothing."""
        plan = plan_write(KEYS, project(state), self.stored(), threshold_ms)
        if plan is None:
            return False
        if plan.delete_hash:
            self.fields.clear()
        self.fields.update(plan.hash_fields)
        if plan.publish is not None:
            self.published.append(json.loads(plan.publish[1]))
        return True

    @property
    def moved(self) -> dict[str, Any] | None:
        return public_view(self.fields)["estimate_moved"]


def step(version_hours: float, code: str = "IMPORT_CUSTOMS_HELD") -> list[journeys.Step]:
    return [*journeys.TO_CUSTOMS, (code, version_hours, journeys.CUSTOMS, journeys.BELGIUM, "BE-CUSTOMS", None)]


def shifted(hours: float, *, end_hours: float | None = None, steps: list[journeys.Step] | None = None) -> dict:
    """A newer state (one more step) whose window is the first one shifted by ``hours`` (its end by
    ``end_hours``, default the same)."""
    end = hours if end_hours is None else end_hours
    window = {
        "earliest_ms": FIRST_WINDOW["earliest_ms"] + int(hours * HOUR_MS),
        "latest_ms": FIRST_WINDOW["latest_ms"] + int(end * HOUR_MS),
        "promised_ms": None,
    }
    return journey_state(TN, steps or step(64), estimated_delivery=window)


# -- detection ----------------------------------------------------------------------------------------


def test_a_window_moved_later_by_a_customs_hold_is_stored_with_when_and_why() -> None:
    parcel = ParcelHash()
    before, held = window_moved(TN)
    assert parcel.apply(before) and parcel.moved is None  # a first state moves nothing
    assert parcel.apply(held)
    assert parcel.moved == {
        "at_ms": BASE_TIME_MS + 64 * HOUR_MS,  # the hold's event time
        "utc_offset_minutes": journeys.BELGIUM,
        "from": FIRST_WINDOW,
        "to": {"earliest_ms": HELD_WINDOW["earliest_ms"], "latest_ms": HELD_WINDOW["latest_ms"]},
        "direction": "later",
        "status": "CustomsHold",
        "sub_status": "held_import",
        "code": "IMPORT_CUSTOMS_HELD",
        "location": journeys.CUSTOMS,
    }
    # The live update carries it too: the published public view is the stored one.
    assert parcel.published[-1]["estimate_moved"] == parcel.moved


def test_a_window_moved_earlier_is_a_move_too() -> None:
    parcel = ParcelHash()
    parcel.apply(journey_state(TN, journeys.TO_CUSTOMS))
    parcel.apply(shifted(-30, steps=step(64, "IMPORT_CUSTOMS_CLEARED")))
    assert parcel.moved is not None
    assert parcel.moved["direction"] == "earlier"
    assert parcel.moved["sub_status"] == "import_customs_cleared"


@pytest.mark.parametrize(
    ("start_hours", "end_hours", "moves"),
    [
        (12, 12, False),  # exactly the threshold: not more than it
        (12.5, 12.5, True),
        (-11, 11, False),
        (0, 13, True),  # only the end moved
        (-13, 0, True),  # only the start moved
    ],
)
def test_only_a_shift_of_the_start_or_end_by_more_than_the_threshold_is_a_move(
    start_hours: float, end_hours: float, moves: bool
) -> None:
    parcel = ParcelHash()
    parcel.apply(journey_state(TN, journeys.TO_CUSTOMS))
    parcel.apply(shifted(start_hours, end_hours=end_hours))
    assert (parcel.moved is not None) is moves


def test_the_threshold_is_a_setting() -> None:
    small = shifted(2)
    strict, lax = ParcelHash(), ParcelHash()
    for parcel, threshold_hours in ((strict, 1), (lax, 3)):
        parcel.apply(journey_state(TN, journeys.TO_CUSTOMS), int(threshold_hours * HOUR_MS))
        parcel.apply(small, int(threshold_hours * HOUR_MS))
    assert strict.moved is not None and lax.moved is None
    assert ConsumerSettings().estimate_move_threshold_hours == DEFAULT_ESTIMATE_MOVE_THRESHOLD_HOURS


def test_the_threshold_setting_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARCELSTREAM_ESTIMATE_MOVE_THRESHOLD_HOURS", "36")
    assert ConsumerSettings().estimate_move_threshold_hours == 36


def test_no_estimate_before_or_after_is_no_move_and_the_last_move_stays() -> None:
    parcel = ParcelHash()
    parcel.apply(journey_state(TN, journeys.TO_CUSTOMS[:-1], estimated_delivery=None))
    parcel.apply(journey_state(TN, journeys.TO_CUSTOMS))  # a window appears: nothing moved
    assert parcel.moved is None
    parcel.apply(shifted(48))
    first_move = parcel.moved
    assert first_move is not None
    # The window goes away (no estimate): no new move, and the one before is kept.
    parcel.apply(journey_state(TN, [*step(64), journeys.TO_DELIVERY[-6]], estimated_delivery=None))
    assert parcel.moved == first_move


def test_a_small_drift_keeps_the_last_move_and_a_newer_move_replaces_it() -> None:
    parcel = ParcelHash()
    parcel.apply(journey_state(TN, journeys.TO_CUSTOMS))
    parcel.apply(shifted(48))
    first_move = parcel.moved
    drift = journey_state(
        TN,
        [*step(64), journeys.TO_DELIVERY[-6]],
        estimated_delivery={
            "earliest_ms": FIRST_WINDOW["earliest_ms"] + 50 * HOUR_MS,
            "latest_ms": FIRST_WINDOW["latest_ms"] + 50 * HOUR_MS,
            "promised_ms": None,
        },
    )
    parcel.apply(drift)
    assert parcel.moved == first_move
    back = journey_state(TN, [*step(64), *journeys.TO_DELIVERY[-6:-3]], estimated_delivery=dict(FIRST_WINDOW))
    parcel.apply(back)
    assert parcel.moved is not None and parcel.moved != first_move
    assert parcel.moved["direction"] == "earlier"
    assert parcel.moved["from"]["earliest_ms"] == FIRST_WINDOW["earliest_ms"] + 50 * HOUR_MS
    assert parcel.moved["sub_status"] == "sorted_at_hub"  # one entry: the latest move only


def test_a_replayed_or_older_state_moves_nothing() -> None:
    parcel = ParcelHash()
    before, held = window_moved(TN)
    parcel.apply(before)
    parcel.apply(held)
    moved_fields = dict(parcel.fields)
    assert not parcel.apply(held)  # the same version again
    assert not parcel.apply(before)  # an older one, whose window differs by days
    assert parcel.fields == moved_fields
    # Replaying the whole topic into an empty read model gives the same move.
    replayed = ParcelHash()
    for state in (before, held, before, held):
        replayed.apply(state)
    assert replayed.fields == moved_fields


def test_the_move_lives_in_the_parcels_hash_and_goes_with_it() -> None:
    parcel = ParcelHash()
    for state in window_moved(TN):
        parcel.apply(state)
    assert parcel.moved is not None
    plan = plan_delete(KEYS, TN, parcel.stored())
    assert plan is not None and plan.delete_hash and plan.hash_key == KEYS.parcel(TN)
    # After the tombstone the parcel starts again: its first state carries no move.
    fresh = ParcelHash()
    fresh.apply(window_moved(TN)[1])
    assert fresh.moved is None


# -- the sentence ---------------------------------------------------------------------------------


def moved_view() -> dict[str, Any]:
    parcel = ParcelHash()
    for state in window_moved(TN):
        parcel.apply(state)
    return public_view(parcel.fields)


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_language_says_when_and_why_the_window_moved(language: str) -> None:
    fields = {name for _, name, _, _ in string.Formatter().parse(MOVED_TEXTS[language]) if name}
    assert fields == {"before", "after", "day", "reason"}
    view = moved_view()
    line = delivery_line(view, language)
    assert line.kind == "window" and line.moved is not None
    before = delivery_line({**view, "estimated_delivery": dict(FIRST_WINDOW), "estimate_moved": None}, language)
    reason, _ = step_message(
        status="CustomsHold", sub_status="held_import", language=language, location=journeys.CUSTOMS
    )
    window_of = {  # the window as the delivery line words it, without the line's own words
        "en": lambda text: text.removeprefix("Expected "),
        "fr": lambda text: text.removeprefix("Livraison prévue "),
        "nl": lambda text: text.removeprefix("Verwacht "),
        "de": lambda text: text.removeprefix("Erwartet "),
        "zh": lambda text: text.removeprefix("预计").removesuffix("送达"),
    }[language]
    assert window_of(before.text) in line.moved
    assert window_of(line.text) in line.moved
    assert reason[1:] in line.moved  # the hold's step message (its first letter may be lower-cased)
    assert line.moved != MOVED_TEXTS["en"] and "{" not in line.moved
    if language != "en":
        assert line.moved.split()[0] != delivery_line(view, "en").moved.split()[0]


def test_the_english_sentence() -> None:
    line = delivery_line(moved_view(), "en")
    assert line.text == "Expected Sat, Jan 10\u2009–\u2009Tue, Jan 13"
    assert line.moved == (
        "Estimated delivery moved from Wed, Jan 7\u2009–\u2009Fri, Jan 9 to Sat, Jan 10\u2009–\u2009Tue, Jan 13"
        " on Jan 3: held by customs in Belgium"
    )


def test_an_earlier_move_reads_too() -> None:
    parcel = ParcelHash()
    parcel.apply(journey_state(TN, journeys.TO_CUSTOMS))
    parcel.apply(shifted(-48, steps=step(64, "IMPORT_CUSTOMS_CLEARED")))
    line = delivery_line(public_view(parcel.fields), "en")
    assert line.moved == (
        "Estimated delivery moved from Wed, Jan 7\u2009–\u2009Fri, Jan 9 to Mon, Jan 5\u2009–\u2009Wed, Jan 7"
        " on Jan 3: released by customs in Belgium"
    )


def test_not_shown_once_delivered_nor_without_a_window() -> None:
    view = moved_view()
    delivered = public_view(project(journeys.delivered(TN)).fields)
    assert journey({**delivered, "estimate_moved": view["estimate_moved"]}, "en").delivery.moved is None
    assert delivery_line({**view, "estimated_delivery": None}, "en").moved is None
    assert delivery_line({**view, "estimate_moved": None}, "en").moved is None


def test_a_late_parcel_keeps_the_move_under_its_late_line() -> None:
    view = {**moved_view(), "delay_reasons": ["customs_clearance"]}
    line = delivery_line(view, "en")
    assert line.kind == "late" and line.moved is not None and line.moved.endswith("held by customs in Belgium")
