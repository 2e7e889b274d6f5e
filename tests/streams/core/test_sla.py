from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas.codec import default_codec
from schemas.sla import SLA_RULES
from streams.core.apply import apply_scan
from streams.core.parcel import RULE_CODES, Parcel
from streams.core.rules import (
    ARRIVAL_CODES,
    CUSTOMS_CLEARED_CODES,
    DAY_MS,
    DELIVERED_CODES,
    HANDOVER_CODES,
    HOUR_MS,
    SlaRules,
)
from streams.core.sla import _milestone_times, evaluate, next_deadline_ms, sla_event_id
from streams.settings import SlaSettings
from tests.streams.builders import DAY, HOUR, T0, TN, scan, shipment

RULES = SlaRules()

#: rule → (scans that start its window at T0, its deadline, a scan code that meets it)
CASES: dict[str, tuple[list[dict[str, Any]], int, str]] = {
    "promise": ([scan("ORDER_CREATED", T0, with_shipment=shipment("standard"))], T0 + 10 * DAY, "DELIVERED"),
    "customs_clearance": ([scan("LINEHAUL_ARRIVED", T0)], T0 + 24 * HOUR, "IMPORT_CUSTOMS_CLEARED"),
    "hub_dwell": ([scan("LINEHAUL_ARRIVED", T0)], T0 + 12 * HOUR, "LASTMILE_HANDOVER"),
    "last_mile_delivery": ([scan("LASTMILE_HANDOVER", T0)], T0 + 48 * HOUR, "DELIVERED"),
    "silence": ([scan("HUB_SORTED", T0)], T0 + 72 * HOUR, "HUB_DEPARTED"),
}


def start(rule: str) -> tuple[Parcel, int]:
    scans, deadline, _met = CASES[rule]
    parcel = None
    for event in scans:
        outcome = apply_scan(parcel, event, RULES, T0)
        assert outcome.sla_events == []
        parcel = outcome.parcel
    assert parcel is not None
    return parcel, deadline


def of_rule(events: list[dict[str, Any]], rule: str) -> list[tuple[str, int]]:
    return [(e["kind"], e["deadline_ms"]) for e in events if e["rule"] == rule]


def test_every_rule_of_the_vocabulary_is_covered() -> None:
    assert set(CASES) == set(SLA_RULES)


@pytest.mark.parametrize("rule", sorted(CASES))
def test_at_risk_then_breach_exactly_once_with_only_the_clock_advancing(rule: str) -> None:
    parcel, deadline = start(rule)
    at_risk = T0 + int(0.8 * (deadline - T0))
    assert of_rule(evaluate(parcel, RULES, at_risk - 1), rule) == []
    assert of_rule(evaluate(parcel, RULES, at_risk), rule) == [("at_risk", deadline)]
    assert of_rule(evaluate(parcel, RULES, at_risk + 1), rule) == []
    assert f"{rule}:at_risk" in parcel.to_record()["open_sla"]
    assert of_rule(evaluate(parcel, RULES, deadline - 1), rule) == []
    breach = [e for e in evaluate(parcel, RULES, deadline) if e["rule"] == rule]
    assert [(e["kind"], e["deadline_ms"], e["observed_ms"]) for e in breach] == [("breach", deadline, deadline)]
    assert default_codec().validate("SlaEvent", breach[0]) == []
    assert breach[0]["sla_event_id"] == sla_event_id(TN, rule, "breach", deadline)
    assert of_rule(evaluate(parcel, RULES, deadline + 30 * DAY), rule) == []
    assert f"{rule}:breach" in parcel.to_record()["open_sla"]


@pytest.mark.parametrize("rule", sorted(CASES))
def test_timer_driven_by_next_deadline_fires_without_any_scan(rule: str) -> None:
    parcel, deadline = start(rule)
    fired: list[dict[str, Any]] = []
    for _ in range(20):  # a timer loop: sleep until the next deadline, evaluate
        due = next_deadline_ms(parcel, RULES)
        if due is None:
            break
        events = evaluate(parcel, RULES, due)
        assert events, "next_deadline_ms must point at a time where evaluate emits something"
        fired.extend(events)
    else:
        pytest.fail("next_deadline_ms never ran out")
    assert of_rule(fired, rule) == [("at_risk", deadline), ("breach", deadline)]
    assert len({e["sla_event_id"] for e in fired}) == len(fired)


@pytest.mark.parametrize("rule", sorted(CASES))
def test_recovered_once_when_the_milestone_is_met_after_a_breach(rule: str) -> None:
    parcel, deadline = start(rule)
    evaluate(parcel, RULES, deadline)
    met_at = deadline + HOUR
    outcome = apply_scan(parcel, scan(CASES[rule][2], met_at), RULES, met_at)
    assert of_rule(outcome.sla_events, rule) == [("recovered", deadline)]
    assert not any(entry.startswith(f"{rule}:") for entry in parcel.to_record()["open_sla"])
    assert of_rule(evaluate(parcel, RULES, met_at + HOUR), rule) == []


@pytest.mark.parametrize("rule", sorted(CASES))
def test_recovered_when_the_milestone_is_met_after_an_at_risk(rule: str) -> None:
    parcel, deadline = start(rule)
    at_risk = T0 + int(0.8 * (deadline - T0))
    evaluate(parcel, RULES, at_risk)
    outcome = apply_scan(parcel, scan(CASES[rule][2], at_risk + 1), RULES, at_risk + 1)
    assert of_rule(outcome.sla_events, rule) == [("recovered", deadline)]
    later = evaluate(parcel, RULES, deadline + DAY)
    assert [kind for kind, rule_deadline in of_rule(later, rule) if rule_deadline == deadline] == []


@pytest.mark.parametrize("rule", sorted(CASES))
def test_no_event_when_the_milestone_is_met_in_time(rule: str) -> None:
    parcel, deadline = start(rule)
    outcome = apply_scan(parcel, scan(CASES[rule][2], T0 + HOUR), RULES, T0 + HOUR)
    assert of_rule(outcome.sla_events, rule) == []
    later = evaluate(parcel, RULES, deadline + 30 * DAY)
    # The met window never fires (silence starts a new window with the new scan).
    assert [kind for kind, rule_deadline in of_rule(later, rule) if rule_deadline == deadline] == []


@pytest.mark.parametrize("rule", sorted(set(CASES) - {"silence"}))
def test_a_milestone_met_after_its_deadline_is_a_breach_even_if_no_timer_fired(rule: str) -> None:
    parcel, deadline = start(rule)
    met_at = deadline + HOUR
    outcome = apply_scan(parcel, scan(CASES[rule][2], met_at), RULES, met_at)
    assert of_rule(outcome.sla_events, rule) == [("breach", deadline), ("recovered", deadline)]


def test_silence_window_restarts_with_each_scan() -> None:
    parcel, deadline = start("silence")
    evaluate(parcel, RULES, deadline)
    assert parcel.to_record()["open_sla"] == ["silence:breach"]
    assert next_deadline_ms(parcel, RULES) is None
    outcome = apply_scan(parcel, scan("HUB_DEPARTED", deadline + DAY), RULES, deadline + DAY)
    assert of_rule(outcome.sla_events, "silence") == [("recovered", deadline)]
    assert next_deadline_ms(parcel, RULES) == deadline + DAY + int(0.8 * 72 * HOUR)


def test_silence_does_not_apply_outside_transit() -> None:
    parcel = apply_scan(None, scan("IMPORT_CUSTOMS_HELD", T0), RULES, T0).parcel
    assert of_rule(evaluate(parcel, RULES, T0 + 30 * DAY), "silence") == []


def test_promise_needs_the_order_data() -> None:
    parcel = apply_scan(None, scan("ORIGIN_RECEIVED", T0), RULES, T0).parcel
    assert of_rule(evaluate(parcel, RULES, T0 + 30 * DAY), "promise") == []
    outcome = apply_scan(parcel, scan("ORDER_CREATED", T0, with_shipment=shipment("express")), RULES, T0 + 30 * DAY)
    assert of_rule(outcome.sla_events, "promise") == [("breach", T0 + 5 * DAY)]
    assert parcel.to_record()["on_time"] is False


def test_a_returned_parcel_stops_its_rules_and_closes_them_without_event() -> None:
    parcel, deadline = start("promise")
    evaluate(parcel, RULES, deadline)
    outcome = apply_scan(parcel, scan("RETURNED", deadline + DAY), RULES, deadline + DAY)
    assert outcome.sla_events == []
    assert parcel.to_record()["open_sla"] == []
    assert next_deadline_ms(parcel, RULES) is None


def test_sla_events_carry_route_carrier_and_service_level() -> None:
    parcel, deadline = start("promise")
    (event,) = evaluate(parcel, RULES, deadline)
    assert (event["route"], event["carrier"], event["service_level"]) == ("CN-BE", "CK", "standard")


def test_an_sla_events_carrier_is_the_carrier_holding_the_parcel_when_it_fires() -> None:
    # The linehaul carrier hands over to the last-mile carrier; a late hub scan, older than the
    # handover, does not move the parcel back to the hub.
    parcel = apply_scan(None, scan("LINEHAUL_ARRIVED", T0, carrier="CK"), RULES, T0).parcel
    apply_scan(parcel, scan("LASTMILE_HANDOVER", T0 + HOUR, carrier="BPOST"), RULES, T0 + HOUR)
    apply_scan(parcel, scan("HUB_SORTED", T0 + HOUR // 2, carrier="LGG-HUB"), RULES, T0 + HOUR)
    breach = [e for e in evaluate(parcel, RULES, T0 + 49 * HOUR) if e["rule"] == "last_mile_delivery"]
    assert [(e["kind"], e["carrier"]) for e in breach] == [("breach", "BPOST")]


def test_rules_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARCELSTREAM_SLA_CUSTOMS_CLEARANCE_HOURS", "6")
    monkeypatch.setenv("PARCELSTREAM_SLA_PROMISE_EXPRESS_DAYS", "3")
    monkeypatch.setenv("PARCELSTREAM_SLA_AT_RISK_FRACTION", "0.5")
    rules = SlaSettings().sla_rules()
    assert rules.customs_clearance_ms == 6 * HOUR_MS
    assert rules.promise_for("express") == 3 * DAY_MS
    assert rules.promise_for("standard") == 10 * DAY_MS
    assert rules.at_risk_fraction == 0.5


def test_defaults_match_the_documented_rules() -> None:
    rules = SlaSettings().sla_rules()
    assert rules == SlaRules()
    assert (rules.customs_clearance_ms, rules.hub_dwell_ms, rules.last_mile_delivery_ms) == (
        24 * HOUR_MS,
        12 * HOUR_MS,
        48 * HOUR_MS,
    )
    assert [rules.promise_for(level) for level in ("standard", "express", "economy", None)] == [
        10 * DAY_MS,
        5 * DAY_MS,
        20 * DAY_MS,
        10 * DAY_MS,
    ]


@pytest.mark.parametrize(
    ("variable", "value"),
    [("PARCELSTREAM_SLA_AT_RISK_FRACTION", "1.5"), ("PARCELSTREAM_SLA_SILENCE_HOURS", "-1")],
)
def test_invalid_rule_settings_are_refused(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError):
        SlaSettings().sla_rules()


@given(st.dictionaries(st.sampled_from(sorted(RULE_CODES)), st.integers(0, 10)))
def test_the_milestones_are_the_first_times_of_their_codes(first_seen: dict[str, int]) -> None:
    expected = [
        min((first_seen[code] for code in codes if code in first_seen), default=None)
        for codes in (DELIVERED_CODES, ARRIVAL_CODES, HANDOVER_CODES, CUSTOMS_CLEARED_CODES)
    ]
    assert _milestone_times(first_seen) == expected
