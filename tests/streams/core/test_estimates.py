from __future__ import annotations

import json
import random
from collections import deque
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from producers.simulator import SimulationConfig, simulate
from streams.core.apply import apply_scan
from streams.core.consolidation import apply_manifest, apply_unit_scan
from streams.core.estimates import (
    DeliveryEstimates,
    EstimateConfig,
    backoff_keys,
    estimate_key,
    estimate_keys,
    route_fold,
)
from streams.core.parcel import JSON_ENTRIES, REMAINING_SHARE, JsonEntryCodec, Parcel, current_estimate_key
from streams.core.rules import SlaRules
from streams.core.taxonomy import InvalidScanError
from tests.streams.builders import DAY, HOUR, T0, location, scan, shipment

RULES = SlaRules()
HUB = location("LGG-HUB-1", "facility", "BE")
WAREHOUSE = location("CN-HGH-WH1", "facility", "CN")
HGH = location("HGH", country="CN")
LGG = location("LGG", country="BE")
HUB_KEY = "CN-HGH-WH1|-|BE|received_at_hub|standard"
# p10-p90: these tests are about keys and decay, and small samples read more clearly at p10 than at p5.
CONFIG = EstimateConfig(half_life_ms=3 * DAY, min_deliveries=5, low_quantile=0.1, high_quantile=0.9)


def journey(tn: str, start_ms: int, hub_to_delivery_ms: int, *, held: bool = False) -> list[dict[str, Any]]:
    """ORDER_CREATED at the warehouse, hub, (customs hold), delivered ``hub_to_delivery_ms`` after the hub."""
    hub_ms = start_ms + DAY
    scans = [
        scan("ORDER_CREATED", start_ms, tracking_number=tn, where=WAREHOUSE, with_shipment=shipment()),
        scan("HUB_RECEIVED", hub_ms, tracking_number=tn, where=HUB),
    ]
    if held:
        scans.append(scan("IMPORT_CUSTOMS_HELD", hub_ms + HOUR, tracking_number=tn, where=HUB))
    scans.append(scan("DELIVERED", hub_ms + hub_to_delivery_ms, tracking_number=tn, where=HUB))
    return scans


def deliver(estimates: DeliveryEstimates, scans: list[dict[str, Any]]) -> Parcel:
    parcel = None
    for event in scans:
        parcel = apply_scan(parcel, event, RULES, event["event_time_ms"], estimates).parcel
    assert parcel is not None
    return parcel


def window_at_hub(estimates: DeliveryEstimates | None, tn: str, start_ms: int) -> tuple[int, int]:
    parcel = None
    for event in journey(tn, start_ms, 0)[:2]:
        parcel = apply_scan(parcel, event, RULES, event["event_time_ms"], estimates).parcel
    assert parcel is not None and parcel.estimated_delivery is not None
    return parcel.estimated_delivery["earliest_ms"], parcel.estimated_delivery["latest_ms"]


def heuristic_at_hub(start_ms: int) -> tuple[int, int]:
    share = REMAINING_SHARE["hub"]
    hub_ms = start_ms + DAY
    promise = RULES.promise_for("standard")
    return hub_ms + int(share[0] * promise), hub_ms + int(share[1] * promise)


def test_an_empty_learner_gives_no_window_and_the_parcel_keeps_the_heuristic() -> None:
    estimates = DeliveryEstimates(CONFIG)
    assert estimates.window(HUB_KEY, T0) is None
    assert estimates.window(None, T0) is None
    assert window_at_hub(estimates, "TN-EMPTY", T0) == heuristic_at_hub(T0) == window_at_hub(None, "TN-NONE", T0)


def test_keys_name_the_route_as_known_at_each_scan_the_step_and_the_service_level() -> None:
    history = [
        {"code": "ORDER_CREATED", "location": WAREHOUSE},
        {"code": "LINEHAUL_DEPARTED", "location": HGH},
        {"code": "LINEHAUL_ARRIVED", "location": LGG},
        {"code": "IMPORT_CUSTOMS_HELD", "location": None},
        {"code": "CARRIER_INFORMATION", "location": None},
        {"code": "DELIVERED", "location": None},
    ]
    assert list(estimate_keys(history, shipment("express"))) == [
        "CN-HGH-WH1|-|BE|order_created|express",
        "HGH|-|BE|departed_origin|express",
        "HGH|LGG|BE|arrived_at_destination|express",
        "HGH|LGG|BE|held_import|express",
        None,  # an informational scan never is the current one
        None,  # nothing to estimate after the delivery
    ]
    # The key a scan is estimated with is the key its delivery teaches.
    assert [estimate_key(history, i, shipment("express")) for i in range(len(history))] == list(
        estimate_keys(history, shipment("express"))
    )
    assert backoff_keys("HGH|LGG|BE|held_import|express") == (
        "HGH|LGG|BE|held_import|express",
        "HGH|LGG|BE|held_import|*",
        "HGH|LGG|*|held_import|*",
        "*|*|*|held_import|*",
    )
    odd = [{"code": "ORDER_CREATED", "location": location("A|B", "facility", "CN")}]
    assert list(estimate_keys(odd, None)) == ["A/B|-|-|order_created|standard"]


def test_a_sparse_key_falls_back_until_it_has_min_deliveries() -> None:
    estimates = DeliveryEstimates(CONFIG)
    for i in range(4):  # delivered at the same time: weight 1 each
        deliver(estimates, journey(f"TN-S{i}", T0, 30 * HOUR))
    assert estimates.window(HUB_KEY, T0 + DAY) is None
    assert window_at_hub(estimates, "TN-SPARSE", T0 + 5 * HOUR) == heuristic_at_hub(T0 + 5 * HOUR)
    deliver(estimates, journey("TN-S4", T0, 30 * HOUR))
    earliest, latest = window_at_hub(estimates, "TN-ENOUGH", T0 + 5 * HOUR)
    hub_ms = T0 + 5 * HOUR + DAY
    assert (earliest - hub_ms, latest - hub_ms) == (30 * HOUR, 30 * HOUR)


def test_the_window_is_the_learned_p10_to_p90_of_the_remaining_time() -> None:
    estimates = DeliveryEstimates(EstimateConfig(half_life_ms=10_000 * DAY, low_quantile=0.1, high_quantile=0.9))
    for i in range(100):  # hub → delivery takes 10 h ... 109 h
        deliver(estimates, journey(f"TN-Q{i}", T0, (10 + i) * HOUR))
    earliest, latest = estimates.window(HUB_KEY, 0)  # type: ignore[misc]
    assert 17 * HOUR <= earliest <= 22 * HOUR
    assert 97 * HOUR <= latest <= 102 * HOUR
    for backoff in backoff_keys(HUB_KEY)[1:]:  # learned alongside
        assert estimates.window(backoff, 0) == pytest.approx((earliest, latest), abs=1000)


def test_the_first_delivery_teaches_and_a_repeated_delivery_scan_does_not() -> None:
    estimates = DeliveryEstimates(CONFIG)
    scans = journey("TN-TWICE", T0, 30 * HOUR)
    parcel = deliver(estimates, scans)
    weight = estimates.sketches[HUB_KEY].digest.mass()
    again = scan("DELIVERED", scans[-1]["event_time_ms"] + HOUR, "second-delivered-scan", tracking_number="TN-TWICE")
    apply_scan(parcel, again, RULES, again["event_time_ms"], estimates)
    apply_scan(parcel, scans[-1], RULES, again["event_time_ms"], estimates)  # a duplicate
    assert estimates.sketches[HUB_KEY].digest.mass() == weight


def test_a_change_in_the_lane_takes_over_within_days() -> None:
    estimates = DeliveryEstimates(CONFIG)
    for day in range(30):  # a month at 1 day from hub to door
        for i in range(10):
            deliver(estimates, journey(f"TN-D{day}-{i}", T0 + day * DAY, DAY))
    before = estimates.window(HUB_KEY, T0 + 31 * DAY)
    assert before is not None and before[1] - before[0] < HOUR
    strike = T0 + 30 * DAY
    for day in range(8):  # a strike: 4 days from hub to door
        for i in range(10):
            deliver(estimates, journey(f"TN-X{day}-{i}", strike + day * DAY, 4 * DAY))
    earliest, latest = estimates.window(HUB_KEY, 0)  # type: ignore[misc]
    assert (earliest, latest) == (4 * DAY, 4 * DAY)  # eight days (< 3 half-lives) on, p10 is the strike's
    slow = DeliveryEstimates(EstimateConfig(half_life_ms=365 * DAY, min_deliveries=5, low_quantile=0.1))
    for day in range(30):
        for i in range(10):
            deliver(slow, journey(f"TN-D{day}-{i}", T0 + day * DAY, DAY))
    for day in range(8):
        for i in range(10):
            deliver(slow, journey(f"TN-X{day}-{i}", strike + day * DAY, 4 * DAY))
    assert slow.window(HUB_KEY, 0)[0] == DAY  # type: ignore[index]  # without decay the old lane still rules


def test_weights_are_rebased_without_changing_the_quantiles() -> None:
    config = EstimateConfig(half_life_ms=HOUR, min_deliveries=1)
    estimates = DeliveryEstimates(config)
    for i in range(200):  # 200 half-lives: 2**200 would overflow the sketch's precision without rebasing
        deliver(estimates, journey(f"TN-R{i}", T0 + i * HOUR, (1 + i % 10) * HOUR))
    sketch = estimates.sketches[HUB_KEY]
    assert sketch.landmark_ms > T0
    assert sketch.weight_at(sketch.latest_ms, config.half_life_ms) < 2**34
    earliest, latest = estimates.window(HUB_KEY, 0)  # type: ignore[misc]
    assert HOUR <= earliest <= latest <= 10 * HOUR


def test_a_delivery_far_older_than_the_sketch_adds_nothing_and_raises_nothing() -> None:
    # With a 1 h half-life a delivery 60 days older than the sketch's landmark weighs 2 ** -1440:
    # 0.0 as a float, which the t-digest refuses ("Weights must be finite and greater than 0"); the
    # parcel's delivery scan would have been dead-lettered as a processing error.
    config = EstimateConfig(half_life_ms=HOUR, min_deliveries=1)
    estimates = DeliveryEstimates(config)
    deliver(estimates, journey("TN-NEW", T0 + 60 * DAY, 5 * HOUR))
    before = estimates.sketches[HUB_KEY].to_dict()

    deliver(estimates, journey("TN-OLD", T0, 30 * HOUR))

    assert estimates.sketches[HUB_KEY].to_dict() == before
    assert estimates.window(HUB_KEY, 0) == (5 * HOUR, 5 * HOUR)


def test_a_lane_that_delivers_in_bursts_keeps_its_last_burst_until_the_next() -> None:
    estimates = DeliveryEstimates(CONFIG)
    for i in range(10):
        deliver(estimates, journey(f"TN-O{i}", T0, 30 * HOUR))
    assert estimates.window(HUB_KEY, 30 * DAY) == (30 * DAY + 30 * HOUR, 30 * DAY + 30 * HOUR)


def test_a_sparse_destination_backs_off_to_its_lane_over_every_destination() -> None:
    estimates = DeliveryEstimates(CONFIG)
    for i in range(5):
        scans = journey(f"TN-FR{i}", T0, 30 * HOUR)
        scans[0]["shipment"] = shipment() | {"destination_country": "FR"}
        deliver(estimates, scans)
    assert estimates.window(HUB_KEY, 0) == (30 * HOUR, 30 * HOUR)  # BE learns from FR's journeys


def test_a_customs_hold_is_its_own_key_and_moves_the_window() -> None:
    estimates = DeliveryEstimates(
        EstimateConfig(half_life_ms=10_000 * DAY, min_deliveries=5, low_quantile=0.1, high_quantile=0.9)
    )
    for i in range(60):  # holds are rare: the hub's p90 is the normal journey's
        deliver(estimates, journey(f"TN-C{i}", T0, 30 * HOUR))
    for i in range(5):
        deliver(estimates, journey(f"TN-H{i}", T0, 90 * HOUR, held=True))
    parcel = None
    for event in journey("TN-HELD", T0 + DAY, 0, held=True)[:3]:
        parcel = apply_scan(parcel, event, RULES, event["event_time_ms"], estimates).parcel
        if event["code"] == "HUB_RECEIVED":
            assert parcel.estimated_delivery is not None
            at_hub = parcel.estimated_delivery["latest_ms"]
    assert parcel is not None and parcel.estimated_delivery is not None
    held_ms = T0 + 2 * DAY + HOUR
    assert parcel.estimated_delivery["latest_ms"] == held_ms + 89 * HOUR > at_hub + DAY


def test_restart_restores_the_same_estimates_from_the_stored_values() -> None:
    estimates = DeliveryEstimates(CONFIG)
    for i in range(50):
        deliver(estimates, journey(f"TN-P{i}", T0 + i * HOUR, (20 + i) * HOUR, held=i % 5 == 0))
    stored = {key: json.dumps(estimates.dump(key)) for key in sorted(estimates.changed)}
    restored = DeliveryEstimates(CONFIG)
    for key, value in stored.items():
        restored.load(key, json.loads(value))
    assert restored.sketches.keys() == estimates.sketches.keys()
    for key in estimates.sketches:
        assert restored.window(key, T0 + 3 * DAY) == estimates.window(key, T0 + 3 * DAY)
    assert DeliveryEstimates.from_dict(json.loads(json.dumps(estimates.to_dict())), CONFIG).to_dict() == (
        estimates.to_dict()
    )
    before = restored.sketches[HUB_KEY].digest.mass()
    deliver(restored, journey("TN-AFTER", T0 + 3 * DAY, 20 * HOUR))  # goes on learning
    assert restored.sketches[HUB_KEY].digest.mass() > before


def test_keys_are_bounded_forgetting_the_longest_undelivered() -> None:
    estimates = DeliveryEstimates(EstimateConfig(max_keys=6, min_deliveries=1))
    for i in range(5):
        origin = location(f"WH{i}", "facility", "CN")
        scans = journey(f"TN-K{i}", T0 + i * DAY, HOUR)
        scans[0]["location"] = origin
        deliver(estimates, scans)
    assert len(estimates.sketches) == 6
    assert not any(key.startswith("WH0|") for key in estimates.sketches)
    assert estimates.dump("WH0|-|BE|order_created|standard") is None  # the worker deletes it
    assert "WH0|-|BE|order_created|standard" in estimates.changed


@pytest.mark.parametrize(
    "kwargs",
    [{"half_life_ms": 0}, {"low_quantile": 0.9, "high_quantile": 0.1}, {"min_deliveries": 0}, {"max_keys": 0}],
)
def test_bad_configuration_is_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        EstimateConfig(**kwargs)


# --- the route fold: the current entry's key without the history ------------------------------


class CountingCodec(JsonEntryCodec):
    """The core's JSON entries, counting how many times the whole history is decoded."""

    def __init__(self) -> None:
        self.decodes = 0

    def decode(self, blob: bytes, sizes: list[int]) -> list[dict[str, Any]]:
        self.decodes += 1
        return super().decode(blob, sizes)


def full_history_key(parcel: Parcel) -> str | None:
    """The current entry's key as the learner reads it: the whole history followed up to it."""
    entries = parcel.history.entries()
    assert parcel.current_entry is not None
    index = next(i for i, entry in enumerate(entries) if entry["event_id"] == parcel.current_entry.event_id)
    return estimate_key(entries, index, parcel.shipment)


def check_fold(parcel: Parcel) -> None:
    assert parcel.route_fold == route_fold(parcel.history.entries())
    assert current_estimate_key(parcel) == full_history_key(parcel)
    restored = Parcel.from_dict(json.loads(json.dumps(parcel.to_dict())), parcel.history.copy())
    assert restored.route_fold == parcel.route_fold


def fold_all(scans: list[dict[str, Any]], estimates: DeliveryEstimates, codec: JsonEntryCodec = JSON_ENTRIES) -> None:
    """Apply ``scans`` in the order given, checking the fold and the key after each one."""
    parcel: Parcel | None = None
    for event in scans:
        try:
            parcel = apply_scan(parcel, event, RULES, event["event_time_ms"], estimates, codec=codec).parcel
        except InvalidScanError:
            continue  # refused (streams.core.authority): nothing changed
        check_fold(parcel)


def simulated_parcel_scans(seed: int, parcels: int) -> dict[str, list[dict[str, Any]]]:
    """Each simulated parcel's scans (its own and the fan-out copies of its units'), in publish order."""
    units: dict[str, Any] = {}
    scans: dict[str, list[dict[str, Any]]] = {}
    queue: deque[tuple[str, dict[str, Any]]] = deque()
    for record in simulate(SimulationConfig(seed=seed, parcels=parcels, start_ms=T0)).records:
        queue.append((record.kind, record.value))
        while queue:
            kind, value = queue.popleft()
            if kind == "scan" and value.get("tracking_number"):
                scans.setdefault(value["tracking_number"], []).append(value)
                continue
            apply = apply_manifest if kind == "manifest" else apply_unit_scan
            unit, fan_out = apply(units.get(value["handling_unit"]), value)
            units[unit.handling_unit] = unit
            queue.extend(("scan", copy) for copy in fan_out)
    return scans


def test_the_fold_gives_the_full_history_key_on_simulated_journeys_in_any_order() -> None:
    journeys = simulated_parcel_scans(seed=3, parcels=150)
    assert len(journeys) >= 100
    estimates = DeliveryEstimates(EstimateConfig(min_deliveries=1))  # learned windows from the first deliveries
    shuffler = random.Random(5)
    for scans in journeys.values():
        fold_all(scans, estimates)  # as published: fan-out copies land late, some scans are late
        shuffled = [*scans, *shuffler.sample(scans, min(2, len(scans)))]  # and a few duplicates
        shuffler.shuffle(shuffled)
        fold_all(shuffled, estimates)
    assert estimates.sketches  # deliveries were learned


PLACES = [None, WAREHOUSE, HGH, LGG, HUB, location("-", "facility"), location("", "facility"), location("A|B")]
ROUTE_TEST_CODES = [
    "ORDER_CREATED",
    "ORIGIN_RECEIVED",
    "LINEHAUL_DEPARTED",
    "TRANSIT_ARRIVED",
    "LINEHAUL_ARRIVED",
    "LINEHAUL_UNLOADED",
    "IMPORT_CUSTOMS_HELD",
    "HUB_RECEIVED",
    "CARRIER_INFORMATION",
    "OUT_FOR_DELIVERY",
    "DELIVERED",
    "RETURNED",
]


@settings(max_examples=300, deadline=None)
@example([("ORDER_CREATED", None, 0, True), ("CARRIER_INFORMATION", HGH, 1, False)])  # names the route, not current
@example([("HUB_RECEIVED", HUB, 5, False), ("LINEHAUL_DEPARTED", None, 2, False), ("ORDER_CREATED", None, 0, True)])
@example(
    [("LINEHAUL_ARRIVED", LGG, 0, False), ("LINEHAUL_UNLOADED", HUB, 1, False), ("LINEHAUL_DEPARTED", HGH, 2, False)]
)
@given(
    st.lists(
        st.tuples(st.sampled_from(ROUTE_TEST_CODES), st.sampled_from(PLACES), st.integers(0, 40), st.booleans()),
        min_size=1,
        max_size=14,
    )
)
def test_the_fold_gives_the_full_history_key_for_any_route_and_arrival_order(
    steps: list[tuple[str, dict[str, Any] | None, int, bool]],
) -> None:
    """Place-less departures, arrivals before a departure, informational scans after the current
    one, places named "-" or with "|", the shipment arriving late: the same key as the history's."""
    scans = [
        scan(
            code,
            T0 + hours * HOUR,
            f"e{index}",
            where=place,
            with_shipment=shipment("express") if with_shipment and code == "ORDER_CREATED" else None,
        )
        for index, (code, place, hours, with_shipment) in enumerate(steps)
    ]
    fold_all(scans, DeliveryEstimates(CONFIG))


def test_a_scan_after_the_latest_decodes_no_history_and_a_first_delivery_decodes_it_once() -> None:
    codec = CountingCodec()
    estimates = DeliveryEstimates(CONFIG)
    parcel = None
    for event in journey("TN-DECODE", T0, DAY)[:-1]:
        parcel = apply_scan(parcel, event, RULES, event["event_time_ms"], estimates, codec=codec).parcel
    assert codec.decodes == 0
    delivered = journey("TN-DECODE", T0, DAY)[-1]
    apply_scan(parcel, delivered, RULES, delivered["event_time_ms"], estimates, codec=codec)
    assert codec.decodes == 1  # the learner reads every entry of a first delivery


def test_a_parcel_stored_without_its_fold_folds_its_history_once() -> None:
    codec = CountingCodec()
    parcel = None
    for event in journey("TN-OLD", T0, DAY)[:2]:
        parcel = apply_scan(parcel, event, RULES, event["event_time_ms"], codec=codec).parcel
    assert parcel is not None
    stored = parcel.to_dict()
    del stored["rf"]  # as stored before the fold was kept
    old = Parcel.from_dict(stored, parcel.history.copy())
    assert old.route_fold is None
    estimates = DeliveryEstimates(CONFIG)
    held = scan("IMPORT_CUSTOMS_HELD", T0 + DAY + HOUR, tracking_number="TN-OLD", where=HUB)
    outcome = apply_scan(old, held, RULES, held["event_time_ms"], estimates, codec=codec)
    assert codec.decodes == 1
    assert outcome.parcel.route_fold == route_fold(outcome.parcel.history.entries())
    assert current_estimate_key(outcome.parcel) == "CN-HGH-WH1|-|BE|held_import|standard"
