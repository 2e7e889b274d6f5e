"""Dwell per stage and transit, in event time: each stay observed once, whatever the scans' order."""

from __future__ import annotations

import json
import random
from typing import Any

from streams.core.apply import apply_scan
from streams.core.parcel import Parcel
from streams.core.rules import SlaRules
from streams.core.stages import STAGE_OF_MILESTONE, STAGES, StageProgress, advance, stays
from streams.core.taxonomy import MILESTONES
from tests.streams.builders import HOUR, T0, scan, shipment

RULES = SlaRules()

#: A journey: (code, hours after T0).
JOURNEY: list[tuple[str, int]] = [
    ("ORDER_CREATED", 0),
    ("EXPORT_CUSTOMS_PRESENTED", 10),
    ("EXPORT_CUSTOMS_CLEARED", 14),
    ("LINEHAUL_DEPARTED", 20),
    ("LINEHAUL_ARRIVED", 32),
    ("IMPORT_CUSTOMS_PRESENTED", 33),
    ("IMPORT_CUSTOMS_CLEARED", 40),
    ("HUB_RECEIVED", 41),
    ("HUB_SORTED", 44),
    ("LASTMILE_HANDOVER", 46),
    ("OUT_FOR_DELIVERY", 60),
    ("DELIVERED", 66),
]
EXPECTED_DWELL = [
    ("export_customs", 10 * 3600.0),  # 10 h .. 20 h (departed)
    ("linehaul", 12 * 3600.0),  # 20 h .. 32 h (arrived)
    ("import_customs", 9 * 3600.0),  # 32 h .. 41 h (hub received)
    ("hub", 5 * 3600.0),  # 41 h .. 46 h (handover)
    ("last_mile", 20 * 3600.0),  # 46 h .. 66 h (delivered)
]


def journey_scans(journey: list[tuple[str, int]] = JOURNEY) -> list[dict[str, Any]]:
    return [
        scan(code, T0 + hours * HOUR, with_shipment=shipment() if code == "ORDER_CREATED" else None)
        for code, hours in journey
    ]


class Observed:
    """Applies scans like the worker and collects what it would observe."""

    def __init__(self) -> None:
        self.parcel: Parcel | None = None
        self.dwell: list[tuple[str, float]] = []
        self.transit: list[float] = []

    def apply(self, *scans: dict[str, Any]) -> Observed:
        for event in scans:
            outcome = apply_scan(self.parcel, event, RULES, event["event_time_ms"])
            self.parcel = outcome.parcel
            self.dwell.extend(outcome.observations.dwell)
            if outcome.observations.transit_seconds is not None:
                self.transit.append(outcome.observations.transit_seconds)
        return self

    def restart(self) -> Observed:
        """The stored parcel as the worker keeps it (JSON) and loads it again."""
        assert self.parcel is not None
        self.parcel = Parcel.from_dict(json.loads(json.dumps(self.parcel.to_dict())), self.parcel.history.copy())
        return self


def test_every_stage_milestone_maps_to_a_stage_and_stages_are_in_journey_order() -> None:
    assert set(STAGE_OF_MILESTONE) <= set(MILESTONES)
    assert set(STAGE_OF_MILESTONE.values()) == set(STAGES)
    firsts = [min(MILESTONES.index(m) for m, s in STAGE_OF_MILESTONE.items() if s == stage) for stage in STAGES]
    assert firsts == sorted(firsts)


def test_a_journey_in_order_observes_each_stage_once_when_it_is_left_and_the_transit_at_delivery() -> None:
    observed = Observed().apply(*journey_scans())
    assert observed.dwell == EXPECTED_DWELL
    assert observed.transit == [66 * 3600.0]


def test_the_parcel_state_names_the_current_stage_and_when_it_was_entered() -> None:
    observed = Observed().apply(*journey_scans()[:9])  # up to HUB_SORTED
    assert observed.parcel is not None
    record = observed.parcel.to_record()
    assert (record["stage"], record["stage_entered_ms"]) == ("hub", T0 + 41 * HOUR)
    observed.apply(*journey_scans()[9:])
    record = observed.parcel.to_record()
    assert (record["stage"], record["stage_entered_ms"]) == (None, None)  # delivered: in no stage


def test_duplicates_observe_nothing() -> None:
    scans = journey_scans()
    observed = Observed().apply(*scans, *scans)
    assert observed.dwell == EXPECTED_DWELL
    assert observed.transit == [66 * 3600.0]


def test_a_late_scan_that_moves_an_observed_stay_does_not_count_it_again() -> None:
    scans = journey_scans()
    hub_received = scans.pop(7)  # HUB_RECEIVED at 41 h arrives after HUB_SORTED (44 h) and later
    observed = Observed().apply(*scans[:8])  # ... up to HUB_SORTED: import customs left at 44 h
    assert observed.dwell[-1] == ("import_customs", 12 * 3600.0)
    before = list(observed.dwell)
    observed.apply(hub_received)  # the stay really ended at 41 h: already counted, not again
    assert observed.dwell == before
    observed.apply(*scans[8:])
    assert [stage for stage, _ in observed.dwell] == [stage for stage, _ in EXPECTED_DWELL]


def test_scans_arriving_in_reverse_order_observe_each_stay_at_most_once() -> None:
    observed = Observed().apply(*reversed(journey_scans()))
    stages = [stage for stage, _ in observed.dwell]
    assert len(stages) == len(set(stages))
    # The delivery came first; the transit waits for the order time, which comes last.
    assert observed.transit == [66 * 3600.0]


def test_no_transit_without_an_order_time() -> None:
    observed = Observed().apply(*journey_scans(JOURNEY[1:]))
    assert observed.transit == []
    assert [stage for stage, _ in observed.dwell] == [stage for stage, _ in EXPECTED_DWELL]


def test_any_arrival_order_never_counts_a_stage_more_often_than_in_order() -> None:
    rng = random.Random(16)
    for _ in range(200):
        scans = journey_scans()
        rng.shuffle(scans)
        observed = Observed().apply(*scans)
        stages = [stage for stage, _ in observed.dwell]
        assert len(stages) == len(set(stages)) <= len(STAGES)
        assert len(observed.transit) == 1
        assert all(seconds >= 0 for _, seconds in observed.dwell)
        # The cheap appended step and the full fold agree on the open stay.
        assert observed.parcel is not None
        last = stays(observed.parcel.history.entries())[0][-1]
        assert (observed.parcel.stages.stage, observed.parcel.stages.entered_ms) == (
            last.stage,
            last.entered_ms if last.stage else None,
        )


def test_each_prefix_of_an_in_order_journey_has_the_open_stay_of_the_full_fold() -> None:
    observed = Observed()
    for event in journey_scans():
        observed.apply(event)
        assert observed.parcel is not None
        last = stays(observed.parcel.history.entries())[0][-1]
        assert observed.parcel.stages.stage == last.stage


def test_a_parcel_re_entering_a_stage_counts_each_stay() -> None:
    journey = [
        *JOURNEY[:10],  # ... handed to last mile at 46 h
        ("HUB_RECEIVED", 50),  # sent back to the hub
        ("HUB_SORTED", 52),
        ("LASTMILE_HANDOVER", 54),
        ("DELIVERED", 70),
    ]
    observed = Observed().apply(*journey_scans(journey))
    assert observed.dwell[-4:] == [
        ("hub", 5 * 3600.0),
        ("last_mile", 4 * 3600.0),
        ("hub", 4 * 3600.0),
        ("last_mile", 16 * 3600.0),
    ]


def test_customs_hold_and_release_stay_one_customs_stay() -> None:
    journey = [
        ("LINEHAUL_ARRIVED", 0),
        ("IMPORT_CUSTOMS_PRESENTED", 1),
        ("IMPORT_CUSTOMS_HELD", 2),
        ("IMPORT_CUSTOMS_CLEARED", 30),
        ("HUB_RECEIVED", 31),
    ]
    observed = Observed().apply(*journey_scans(journey))
    assert observed.dwell == [("import_customs", 31 * 3600.0)]


def test_a_restarted_worker_does_not_count_stays_again() -> None:
    scans = journey_scans()
    observed = Observed().apply(*scans[:9]).restart()
    observed.apply(*scans)  # the source replays everything after the restart
    assert observed.dwell == EXPECTED_DWELL
    observed.restart().apply(scans[-1])
    assert observed.transit == [66 * 3600.0]


def test_a_late_upstream_scan_after_delivery_enters_the_history_only() -> None:
    observed = Observed().apply(*journey_scans(), scan("HUB_SORTED", T0 + 80 * HOUR))
    assert observed.dwell == EXPECTED_DWELL
    assert observed.parcel is not None and observed.parcel.stages.stage is None


def test_a_corrected_delivery_counts_the_transit_once() -> None:
    observed = Observed().apply(
        *journey_scans(), scan("OUT_FOR_DELIVERY", T0 + 70 * HOUR), scan("DELIVERED", T0 + 72 * HOUR)
    )
    assert observed.transit == [66 * 3600.0]
    assert observed.dwell[-1] == ("last_mile", 2 * 3600.0)  # the re-opened stay, 70 h .. 72 h


def test_stays_follow_the_timeline_and_advance_is_idempotent() -> None:
    history = [
        {"code": code, "event_time_ms": T0 + hours * HOUR, "event_id": str(hours)}
        for code, hours in [("HUB_RECEIVED", 0), ("HUB_SORTED", 1), ("LASTMILE_HANDOVER", 2)]
    ]
    found, current = stays(history)
    assert found == [("hub", T0, T0 + 2 * HOUR), ("last_mile", T0 + 2 * HOUR, None)]
    assert current is history[-1]
    progress = StageProgress()
    assert advance(progress, history, None).dwell == [("hub", 2 * 3600.0)]
    assert not advance(progress, history, None)
    assert StageProgress.from_list(progress.to_list()) == progress
    assert (progress.stage, progress.entered_ms) == ("last_mile", T0 + 2 * HOUR)
