"""The customer messages of consumers/journey.py: a message for every scan code and sub-status in
every language, and what the page and the notifier say for realistic parcels."""

from __future__ import annotations

import string

import pytest

from consumers.journey import (
    DELAY_REASONS,
    DELIVERY_TEXTS,
    FLAGS,
    LANGUAGES,
    MILESTONE_KEYS,
    MILESTONE_LABELS,
    MILESTONE_OF_CODE,
    MOVEMENT_PLACEHOLDERS,
    MOVEMENT_STEP_MESSAGES,
    STATUS_NAMES,
    STEP_MESSAGES,
    journey,
    local_time,
    step_message,
    update_text,
)
from consumers.read_model import project, public_view
from schemas.scan_codes import SCAN_CODES
from schemas.sla import SLA_RULES
from schemas.statuses import STATUSES
from schemas.sub_statuses import SUB_STATUS_OF_CODE, SUB_STATUSES
from streams.core.taxonomy import INFORMATIONAL
from tests.consumers import journeys
from tests.consumers.journeys import classify

PLACEHOLDERS = {"place", "country", "carrier"}


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def view_of(state: dict[str, object]) -> dict[str, object]:
    return public_view(project(state).fields)


def test_the_shared_vocabulary_matches_the_stream_processors_taxonomy() -> None:
    assert set(SUB_STATUS_OF_CODE) == set(SCAN_CODES)
    assert {code: classify(code).sub_status for code in SCAN_CODES} == SUB_STATUS_OF_CODE


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(("code", "sub_status"), sorted(SUB_STATUS_OF_CODE.items()))
def test_every_scan_code_and_sub_status_has_a_message(language: str, code: str, sub_status: str) -> None:
    variants = STEP_MESSAGES[language][sub_status].split("|")
    assert all(variant.strip() for variant in variants)
    assert all(_fields(variant) <= PLACEHOLDERS for variant in variants)
    assert _fields(variants[-1]) == set(), "the last variant must need nothing"
    bare, _ = step_message(status="InTransit", sub_status=sub_status, code=code, language=language)
    assert bare == variants[-1]
    located, _ = step_message(
        status="InTransit",
        sub_status=None,
        code=code,
        language=language,
        location=journeys.LGG,
        carrier="GLS",
    )
    assert "{" not in located and located.strip()


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_language_has_every_text(language: str) -> None:
    assert set(STEP_MESSAGES[language]) == SUB_STATUSES
    assert set(STATUS_NAMES[language]) == set(STATUSES)
    assert set(MILESTONE_LABELS[language]) == set(MILESTONE_KEYS)
    assert set(FLAGS[language]) == set(FLAGS["en"])
    assert set(DELIVERY_TEXTS[language]) == set(DELIVERY_TEXTS["en"])
    assert set(DELAY_REASONS[language]) == set(SLA_RULES)
    assert set(MOVEMENT_STEP_MESSAGES[language]) == set(MOVEMENT_STEP_MESSAGES["en"])
    if language != "en":
        assert STEP_MESSAGES[language]["delivered"] != STEP_MESSAGES["en"]["delivered"]
        assert FLAGS[language]["customs_hold"] != FLAGS["en"]["customs_hold"]


def test_every_milestone_code_is_a_scan_code_and_only_exceptions_reach_none() -> None:
    assert set(MILESTONE_OF_CODE) <= set(SCAN_CODES)
    assert set(MILESTONE_OF_CODE.values()) == set(MILESTONE_KEYS)
    # Informational codes (a carrier's notice that moves nothing) reach no milestone either.
    unplaced = set(SCAN_CODES) - set(MILESTONE_OF_CODE) - INFORMATIONAL
    assert {classify(code).status for code in unplaced} == {"Exception"}


def test_a_delivered_parcel() -> None:
    shown = journey(view_of(journeys.delivered("LX123456785CN")), "en")
    assert shown.status_name == "Delivered"
    assert shown.delivery.kind == "delivered"
    # 2026-01-01T00:00Z + 94.5 h, at the delivery round in Belgium (UTC+1); no window any more.
    assert shown.delivery.text == "Delivered on Sun, Jan 4, 2026 23:30 (UTC+1)"
    assert [m.state for m in shown.milestones] == ["done"] * 6 + ["current"]
    assert shown.flag is None
    messages = [step.message for step in reversed(shown.steps)]
    assert "Departed Hangzhou Xiaoshan International Airport (HGH), China" in messages
    assert "Arrived at Liège Airport (LGG), Belgium" in messages
    assert "Presented to customs in Belgium" in messages
    assert "Released by customs in Belgium" in messages
    assert "Sorted at Cainiao eWTP hub, Liège Airport, Belgium" in messages
    assert "Handed to GLS" in messages
    assert "Out for delivery with GLS" in messages
    assert shown.steps[0].message == "Delivered"
    assert shown.steps[0].place == "Delivery round, Belgium"
    departed = next(step for step in shown.steps if step.code == "LINEHAUL_DEPARTED")
    assert departed.time == "Sat, Jan 3, 2026 04:00 (UTC+8)"  # 44 h after midnight UTC, in Hangzhou
    assert departed.iso_time == "2026-01-03T04:00+08:00"


def test_an_in_transit_parcel_shows_its_window_and_where_it_is() -> None:
    shown = journey(view_of(journeys.in_transit("LX123456785CN")), "en")
    assert shown.delivery.kind == "window"
    assert shown.delivery.text == "Expected Wed, Jan 7\u2009–\u2009Fri, Jan 9"
    current = [m for m in shown.milestones if m.state == "current"]
    assert [m.label for m in current] == ["Left China"]
    assert shown.milestones[2].label == "Arrived in the destination country"
    assert shown.flag is None


def test_a_parcel_held_in_customs_is_flagged_and_late_with_the_reason() -> None:
    shown = journey(view_of(journeys.held_in_customs("LX123456785CN")), "en")
    assert shown.steps[0].message == "Held by customs in Belgium: IOSS number missing or invalid"
    assert shown.flag is not None and shown.flag.kind == "customs_hold"
    assert "IOSS" in shown.flag.advice
    assert shown.delivery.kind == "late"
    assert shown.delivery.text == "Running late: customs clearance is taking longer than usual"
    assert [m.label for m in shown.milestones if m.state == "current"] == ["Arrived in Belgium"]


def test_a_returning_parcel_is_not_being_delivered() -> None:
    shown = journey(view_of(journeys.returning("LX123456785CN")), "fr")
    assert shown.steps[0].message == "En retour vers l'expéditeur"
    assert (
        shown.steps[1].message
        == "Échec de la tentative de livraison : Address incomplete; recipient could not be found"
    )
    assert shown.flag is not None and shown.flag.kind == "returning"
    assert shown.delivery.kind == "not_delivering"
    assert [m.key for m in shown.milestones if m.state == "current"] == ["out_for_delivery"]


def test_running_late_against_the_promise_keeps_the_new_window() -> None:
    view = view_of(journeys.in_transit("LX123456785CN"))
    view["on_time"] = False
    line = journey(view, "nl").delivery
    assert line.kind == "late"
    assert (
        line.text
        == "Vertraagd: later dan de door de verkoper beloofde bezorging. Nu verwacht wo 7\u2009–\u2009vr 9 jan"
    )
    view["delay_reasons"] = ["silence", "hub_dwell"]
    assert journey(view, "en").delivery.text.startswith(
        "Running late: the parcel is waiting longer than usual at the hub; we have had no news"
    )


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(
    "build", [journeys.delivered, journeys.in_transit, journeys.held_in_customs, journeys.returning]
)
def test_every_journey_reads_in_every_language(language: str, build: object) -> None:
    shown = journey(view_of(build("LX123456785CN")), language)  # type: ignore[operator]
    texts = [shown.status_name, shown.delivery.text, *(m.label for m in shown.milestones)]
    texts += [step.message for step in shown.steps] + [step.time for step in shown.steps]
    assert all(text.strip() and "{" not in text for text in texts)
    assert len({m.label for m in shown.milestones}) == len(MILESTONE_KEYS)


def test_steps_without_a_place_and_unknown_sub_statuses_still_read() -> None:
    assert step_message(status="InTransit", sub_status="departed_origin", language="de") == ("Abgereist", False)
    assert step_message(status="InTransit", sub_status="departed_origin", language="de", location=journeys.HGH) == (
        "Abgereist von Hangzhou Xiaoshan International Airport (HGH), China",
        True,
    )
    # A sub-status outside the vocabulary falls back to its code's, then to the status name.
    assert step_message(status="InTransit", sub_status="x", code="HUB_SORTED", language="en")[0] == "Sorted at the hub"
    assert step_message(status="CustomsHold", sub_status="x", language="zh")[0] == "海关扣留"
    assert local_time(0, 330, "en") == "Thu, Jan 1, 1970 05:30 (UTC+5:30)"
    assert local_time(0, -180, "en").endswith("(UTC-3)")
    assert local_time(0, 0, "en").endswith("(UTC)")


def test_update_text_for_the_notifier_is_the_pages_sentence() -> None:
    state = journeys.delivered("LX123456785CN")
    entry = state["history"][-4]  # handed to the last-mile carrier
    text = update_text({**entry, "estimated_delivery": None, "on_time": True}, "en")
    assert text.message == "Handed to the delivery company"  # the next carrier is unknown from one update
    arrived = update_text({**state["history"][6], "estimated_delivery": state["estimated_delivery"]}, "en")
    assert arrived.message == "Arrived at Liège Airport (LGG), Belgium"
    assert arrived.time == "Sat, Jan 3, 2026 11:00 (UTC+1)"


def test_an_export_reads_as_the_mirror_journey() -> None:
    steps: list[journeys.Step] = [
        ("ORDER_CREATED", 0, journeys.HUB, journeys.BELGIUM, "CAINIAO", None),
        ("EXPORT_CUSTOMS_CLEARED", 10, journeys.CUSTOMS, journeys.BELGIUM, "BE-CUSTOMS", None),
        ("LINEHAUL_DEPARTED", 20, journeys.LGG, journeys.BELGIUM, "CK", None),
        ("LINEHAUL_ARRIVED", 32, journeys.HGH, journeys.CHINA, "CK", None),
    ]
    shown = journey(view_of(journeys.journey_state("LX123456785CN", steps)), "en")
    assert [m.label for m in shown.milestones][1:3] == ["Left Belgium", "Arrived in China"]
    assert [m.state for m in shown.milestones][:4] == ["done", "done", "current", "todo"]
    assert shown.steps[0].message == "Arrived at Hangzhou Xiaoshan International Airport (HGH), China"
    assert shown.steps[2].message == "Released by export customs in Belgium"


FLIGHT = {"kind": "flight", "reference": "CK261"}
TRAIN = {"kind": "train", "reference": "X8012-042007"}
SEA = {"kind": "sea", "reference": "CSNU3054383"}
MOVEMENT_SUB_STATUSES = sorted(MOVEMENT_STEP_MESSAGES["en"])


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("sub_status", MOVEMENT_SUB_STATUSES)
@pytest.mark.parametrize("movement", [FLIGHT, TRAIN, SEA], ids=lambda m: m["kind"])
def test_every_linehaul_step_names_its_movement_in_every_language(
    language: str, sub_status: str, movement: dict[str, str]
) -> None:
    placeholder = MOVEMENT_PLACEHOLDERS[movement["kind"]]
    variants = MOVEMENT_STEP_MESSAGES[language][sub_status].split("|")
    assert all(_fields(variant) <= PLACEHOLDERS | set(MOVEMENT_PLACEHOLDERS.values()) for variant in variants)
    # Each kind has a variant with the place and one without, so a step without a location still names it.
    assert {placeholder, "place"} in [_fields(variant) for variant in variants]
    assert {placeholder} in [_fields(variant) for variant in variants]
    code = next(code for code, sub in SUB_STATUS_OF_CODE.items() if sub == sub_status)
    for location in (journeys.LGG, None):
        text, names_place = step_message(
            status="InTransit",
            sub_status=sub_status,
            code=code,
            language=language,
            location=location,
            movement=movement,
        )
        assert movement["reference"] in text and "{" not in text
        assert names_place is (location is not None)
        without, _ = step_message(
            status="InTransit", sub_status=sub_status, code=code, language=language, location=location
        )
        assert movement["reference"] not in without
        if location is None:
            assert without == STEP_MESSAGES[language][sub_status].split("|")[-1]


def test_a_flown_parcel_names_its_flight_on_the_linehaul_steps_only() -> None:
    view = {**view_of(journeys.delivered("LX123456785CN")), "movement": FLIGHT}
    shown = journey(view, "en")
    by_code = {step.code: step for step in shown.steps}
    assert (
        by_code["LINEHAUL_MANIFESTED"].message
        == "Loaded on flight CK261 at Hangzhou Xiaoshan International Airport (HGH), China"
    )
    assert (
        by_code["LINEHAUL_DEPARTED"].message
        == "Departed Hangzhou Xiaoshan International Airport (HGH), China on flight CK261"
    )
    assert by_code["LINEHAUL_ARRIVED"].message == "Arrived at Liège Airport (LGG), Belgium on flight CK261"
    assert by_code["LINEHAUL_UNLOADED"].message == "Unloaded from flight CK261 at Liège Airport (LGG), Belgium"
    assert by_code["LINEHAUL_DEPARTED"].place is None  # the message names it
    assert by_code["IMPORT_CUSTOMS_PRESENTED"].message == "Presented to customs in Belgium"
    assert sum("CK261" in step.message for step in shown.steps) == 4
    # Without a known movement (or an unknown kind) the steps read as before.
    for movement in (None, {"kind": "barge", "reference": "B1"}, {"kind": "flight", "reference": ""}):
        plain = journey({**view, "movement": movement}, "en")
        assert not any("CK261" in step.message or "B1" in step.message for step in plain.steps)
        assert [s.message for s in plain.steps] == [
            s.message for s in journey(view_of(journeys.delivered("LX123456785CN")), "en").steps
        ]


def test_trains_and_containers_read_in_each_language() -> None:
    view = view_of(journeys.delivered("LX123456785CN"))
    departed = {
        language: next(
            s.message for s in journey({**view, "movement": TRAIN}, language).steps if s.code == "LINEHAUL_DEPARTED"
        )
        for language in LANGUAGES
    }
    assert departed["en"] == "Departed Hangzhou Xiaoshan International Airport (HGH), China by block train X8012-042007"
    assert departed["fr"].startswith("Parti de ") and departed["fr"].endswith("par le train-bloc X8012-042007")
    assert departed["de"].startswith("Mit Ganzzug X8012-042007 abgereist von ")
    assert departed["zh"].startswith("已搭乘班列X8012-042007从")
    arrived = journey({**view, "movement": SEA}, "nl").steps
    message = next(s.message for s in arrived if s.code == "LINEHAUL_ARRIVED")
    assert message == "Aangekomen in Liège Airport (LGG), België in zeecontainer CSNU3054383"


def test_update_text_names_the_movement_when_the_caller_knows_it() -> None:
    entry = journeys.delivered("LX123456785CN")["history"][5]  # departed Hangzhou
    assert entry["code"] == "LINEHAUL_DEPARTED"
    update = {**entry, "estimated_delivery": None, "on_time": True}
    assert update_text({**update, "movement": FLIGHT}, "en").message.endswith(" on flight CK261")
    assert "CK261" not in update_text(update, "en").message
