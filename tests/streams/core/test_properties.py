"""Property tests: whatever the arrival order and duplication of a journey's events (parcel scans,
unit scans through bags and ULDs, manifests), the parcels end in the same state and the same set
of status updates is published as for the ordered stream."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.codec import default_codec
from streams.core.apply import apply_scan
from streams.core.authority import LAST_MILE_CODES
from streams.core.parcel import Parcel
from streams.core.rules import SlaRules
from streams.core.sla import evaluate, next_deadline_ms
from tests.streams.builders import DAY, HOUR, T0, Pipeline, location, manifest, scan, shipment

BAG = "BAG-7"
ULD = "AKE70001CK"
PLACES = [location("HGH", country="CN"), location("LGG", country="BE"), location("LGG-HUB-1", "facility"), None]

# (code, level, optional): the import flow of one parcel; level says who is scanned.
TEMPLATE: list[tuple[str, str, bool]] = [
    ("ORIGIN_RECEIVED", "parcel", False),
    ("ORIGIN_SORTED", "parcel", True),
    ("EXPORT_CUSTOMS_HELD", "parcel", True),
    ("EXPORT_CUSTOMS_CLEARED", "bag", True),
    ("LINEHAUL_RECEIVED", "uld", True),
    ("LINEHAUL_DEPARTED", "uld", False),
    ("TRANSIT_ARRIVED", "uld", True),
    ("TRANSIT_DEPARTED", "uld", True),
    ("LINEHAUL_ARRIVED", "uld", False),
    ("LINEHAUL_UNLOADED", "bag", True),
    ("IMPORT_CUSTOMS_PRESENTED", "bag", True),
    ("IMPORT_CUSTOMS_HELD", "parcel", True),
    ("IMPORT_CUSTOMS_CLEARED", "bag", False),
    ("HUB_RECEIVED", "bag", False),
    ("HUB_SORTED", "parcel", False),
    ("HUB_MISSORTED", "parcel", True),
    ("HUB_SORTED", "parcel", True),
    ("HUB_DEPARTED", "parcel", True),
    ("LASTMILE_HANDOVER", "parcel", False),
    ("LASTMILE_RECEIVED", "parcel", True),
    ("OUT_FOR_DELIVERY", "parcel", False),
]
ENDINGS: list[list[str]] = [
    ["DELIVERED"],
    ["AVAILABLE_FOR_PICKUP", "DELIVERED"],
    ["DELIVERY_ATTEMPT_FAILED", "OUT_FOR_DELIVERY", "DELIVERED"],
    ["DELIVERY_ATTEMPT_FAILED", "OUT_FOR_DELIVERY", "DELIVERY_ATTEMPT_FAILED", "RETURN_TO_SENDER", "RETURNED"],
    ["LOST"],
]


@dataclass
class Journey:
    tracking_numbers: list[str]
    messages: list[tuple[str, dict[str, Any]]]  # in event-time order, manifests first


@st.composite
def journeys(draw: st.DrawFn) -> Journey:
    parcels = [f"LP{index:09d}CN" for index in range(draw(st.integers(1, 3)))]
    codes = [(code, level) for code, level, optional in TEMPLATE if not optional or draw(st.booleans())]
    codes += [(code, "parcel") for code in draw(st.sampled_from(ENDINGS))]
    codes = codes[: draw(st.integers(1, len(codes)))]  # a journey may still be under way
    with_order = draw(st.booleans())
    service_level = draw(st.sampled_from(["standard", "express", "economy"]))

    # Manifests: the ULD holds the bag; the bag's parcels may join in two manifests.
    split = draw(st.integers(1, len(parcels)))
    messages: list[tuple[str, dict[str, Any]]] = [
        ("manifest", manifest("uld-m1", ULD, [BAG], unit_type="uld", member_type="bag", time_ms=T0)),
        ("manifest", manifest("bag-m1", BAG, parcels[:split], time_ms=T0)),
    ]
    if split < len(parcels):
        messages.append(("manifest", manifest("bag-m2", BAG, parcels[split:], time_ms=T0 + HOUR)))
    if with_order:
        for number in parcels:
            order = scan("ORDER_CREATED", T0, f"{number}-order", tracking_number=number)
            order["shipment"] = shipment(service_level, ordered_ms=T0)
            messages.append(("scan", order))

    time_ms = T0
    last_mile = draw(st.sampled_from(["CK", "BPOST", "CN"]))  # one carrier per last mile (streams.core.authority)
    for step, (code, level) in enumerate(codes):
        time_ms += draw(st.integers(60_000, 40 * HOUR))  # strictly increasing event times
        where = draw(st.sampled_from(PLACES))
        carrier = last_mile if code in LAST_MILE_CODES else draw(st.sampled_from(["CK", "BPOST", "CN"]))
        if level == "parcel":
            for number in parcels:
                event = scan(code, time_ms, f"{number}-{step}", tracking_number=number, where=where, carrier=carrier)
                messages.append(("scan", event))
        else:
            unit = ULD if level == "uld" else BAG
            event = scan(code, time_ms, f"{unit}-{step}", tracking_number=None, handling_unit=unit, where=where)
            messages.append(("scan", event))
    return Journey(parcels, messages)


def process(messages: list[tuple[str, dict[str, Any]]], tracking_numbers: list[str]) -> Pipeline:
    pipeline = Pipeline()
    for kind, value in messages:
        pipeline.feed(kind, value)
    final_now = pipeline.clock.now_ms(0)
    for number in tracking_numbers:  # the SLA timer's sweep at the end
        pipeline.sla_events.extend(evaluate(pipeline.parcels[number], pipeline.rules, final_now))
    return pipeline


def assert_one_content_per_id(updates: list[dict[str, Any]], sla_events: list[dict[str, Any]]) -> None:
    first_update: dict[str, dict[str, Any]] = {}
    for update in updates:
        assert first_update.setdefault(update["update_id"], update) == update, "one update id, two contents"
    first_event: dict[str, dict[str, Any]] = {}
    for event in sla_events:
        assert first_event.setdefault(event["sla_event_id"], event) == event, "one SLA event id, two contents"


def update_ids(pipeline: Pipeline, tracking_number: str) -> list[str]:
    return [u["update_id"] for u in pipeline.status_updates if u["tracking_number"] == tracking_number]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(journey=journeys(), seed=st.randoms(use_true_random=False), data=st.data())
def test_any_shuffle_and_duplication_gives_the_same_parcels_and_update_ids(
    journey: Journey, seed: random.Random, data: st.DataObject
) -> None:
    ordered = process(journey.messages, journey.tracking_numbers)

    duplicates = data.draw(st.lists(st.sampled_from(journey.messages), max_size=len(journey.messages)))
    shuffled_messages = journey.messages + duplicates
    seed.shuffle(shuffled_messages)
    shuffled = process(shuffled_messages, journey.tracking_numbers)

    codec = default_codec()
    for number in journey.tracking_numbers:
        record = ordered.parcels[number].to_record()
        assert shuffled.parcels[number].to_record() == record
        assert codec.validate("ParcelState", record) == []
        ordered_ids = update_ids(ordered, number)
        shuffled_ids = update_ids(shuffled, number)
        assert set(shuffled_ids) == set(ordered_ids)
        assert len(shuffled_ids) == len(set(shuffled_ids)), "an update first published twice"
        assert_one_content_per_id(*shuffled.published())
        sequences = [u["sequence"] for u in shuffled.status_updates if u["tracking_number"] == number]
        assert sequences == list(range(1, len(sequences) + 1))
        # The ordered stream publishes exactly the customer-visible changes, in order.
        visible = [(u["status"], u["sub_status"]) for u in ordered.status_updates if u["tracking_number"] == number]
        assert all(a != b for a, b in pairwise(visible))
        assert visible[-1] == (record["status"], record["sub_status"])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(journey=journeys(), seed=st.randoms(use_true_random=False))
def test_sla_events_are_never_published_twice(journey: Journey, seed: random.Random) -> None:
    messages = journey.messages * 2
    seed.shuffle(messages)
    pipeline = process(messages, journey.tracking_numbers)
    counts = Counter(e["sla_event_id"] for e in pipeline.sla_events)
    assert all(count == 1 for count in counts.values())
    assert_one_content_per_id(*pipeline.published())
    codec = default_codec()
    assert all(codec.validate("SlaEvent", e) == [] for e in pipeline.sla_events)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(journey=journeys(), seed=st.randoms(use_true_random=False), data=st.data())
def test_a_crash_after_storing_and_a_replay_in_another_order_publish_every_update_with_one_content(
    journey: Journey, seed: random.Random, data: st.DataObject
) -> None:
    """The worker stores before it publishes. It crashes with the state of the first ``stored``
    messages stored, the outputs of the first ``sent`` published and the offsets of the first
    ``committed`` committed; the restarted worker replays the rest from the stored state, in
    another order."""
    messages = journey.messages
    stored = data.draw(st.integers(0, len(messages)), label="stored")
    sent = data.draw(st.integers(0, stored), label="sent")
    committed = data.draw(st.integers(0, sent), label="committed")
    crashed = Pipeline()
    for kind, value in messages[:sent]:
        crashed.feed(kind, value)
    crashed.flush()  # acknowledged: the next batch's outbox no longer holds them
    published_updates, published_events = crashed.published()
    for kind, value in messages[sent:stored]:  # stored, but their outputs never left the worker
        crashed.feed(kind, value)
    restarted = crashed.restored()
    replayed = messages[committed:]
    seed.shuffle(replayed)
    for kind, value in replayed:
        restarted.feed(kind, value)
    updates, events = restarted.published()

    assert_one_content_per_id(published_updates + updates, published_events + events)
    uninterrupted = process(messages, journey.tracking_numbers)
    for number in journey.tracking_numbers:
        assert restarted.parcels[number].to_record() == uninterrupted.parcels[number].to_record()
    assert {u["update_id"] for u in published_updates + updates} == {
        u["update_id"] for u in uninterrupted.status_updates
    }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(journey=journeys(), seed=st.randoms(use_true_random=False))
def test_the_deadline_found_with_the_sla_evaluation_is_next_deadline_ms(journey: Journey, seed: random.Random) -> None:
    """apply_scan evaluates the SLA rules and finds the next deadline in one pass; it is the one
    ``next_deadline_ms`` computes from the parcel afterwards (the worker's timer schedules it)."""
    rules = SlaRules()
    messages = list(journey.messages)
    seed.shuffle(messages)
    parcels: dict[str, Parcel] = {}
    clock = 0
    for kind, value in messages:
        if kind != "scan" or not value.get("tracking_number"):
            continue
        clock = max(clock, value["event_time_ms"])
        outcome = apply_scan(parcels.get(value["tracking_number"]), value, rules, clock + seed.choice([0, 30 * HOUR]))
        parcels[outcome.parcel.tracking_number] = outcome.parcel
        if not outcome.duplicate:
            assert outcome.deadline_known
            assert outcome.next_deadline_ms == next_deadline_ms(outcome.parcel, rules)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(journey=journeys(), seed=st.randoms(use_true_random=False), data=st.data())
def test_no_input_order_brings_an_erased_parcel_back(
    journey: Journey, seed: random.Random, data: st.DataObject
) -> None:
    """Erased at any point of any order, with the rest (and duplicates, and a replay of everything
    from the start) coming after: the parcel never has a stored state again."""
    messages = journey.messages + data.draw(st.lists(st.sampled_from(journey.messages), max_size=10))
    seed.shuffle(messages)
    erased_at = data.draw(st.integers(0, len(messages)), label="erased at")
    number = journey.tracking_numbers[0]
    pipeline = Pipeline()
    for kind, value in messages[:erased_at]:
        pipeline.feed(kind, value)
    pipeline.erase(number)
    updates_before = len(pipeline.status_updates)
    for kind, value in messages[erased_at:] + journey.messages:
        pipeline.feed(kind, value)
    restarted = pipeline.restored()
    for kind, value in journey.messages:
        restarted.feed(kind, value)
    restarted.expire(restarted.clock.now_ms(0) + 400 * DAY)  # and every timer
    for stage in (pipeline, restarted):
        assert number not in stage.parcels
        assert not any(u["tracking_number"] == number for u in stage.status_updates[updates_before:])
    others = [n for n in journey.tracking_numbers if n != number]
    assert all(n in pipeline.parcels for n in others if any(v.get("tracking_number") == n for _k, v in messages))
