"""Shipment facts are written once and the last mile belongs to one carrier (streams.core.authority)."""

from __future__ import annotations

import pytest

from streams.core.apply import apply_scan
from streams.core.rules import SlaRules
from streams.core.taxonomy import InvalidScanError
from tests.streams.builders import HOUR, T0, scan, shipment

RULES = SlaRules()


def test_shipment_facts_are_written_once_and_an_identical_repeat_is_fine() -> None:
    parcel = apply_scan(None, scan("ORDER_CREATED", T0, "o1", with_shipment=shipment()), RULES, T0).parcel
    outcome = apply_scan(parcel, scan("ORIGIN_RECEIVED", T0 + HOUR, "o2", with_shipment=shipment()), RULES, T0)
    assert not outcome.duplicate and outcome.parcel.merchant == "shop-1"


def test_shipment_facts_a_conflicting_set_is_refused_and_changes_nothing() -> None:
    parcel = apply_scan(None, scan("ORDER_CREATED", T0, "o1", with_shipment=shipment()), RULES, T0).parcel
    before = parcel.to_dict()
    forged = shipment(merchant="attacker-shop")
    forged["destination_postcode"] = "1000"
    with pytest.raises(InvalidScanError) as refused:
        apply_scan(parcel, scan("ORIGIN_RECEIVED", T0 + HOUR, "f1", with_shipment=forged), RULES, T0)
    assert refused.value.reason_code == "shipment_conflict"
    assert "destination_postcode" in refused.value.reason and "merchant" in refused.value.reason
    assert "attacker-shop" not in refused.value.reason  # field names only: the values may be personal data
    assert parcel.to_dict() == before


def test_shipment_facts_an_earlier_dated_order_does_not_replace_them() -> None:
    # The reported attack: an ORDER_CREATED dated 1971 took over merchant and destination.
    parcel = apply_scan(None, scan("ORDER_CREATED", T0, "o1", with_shipment=shipment()), RULES, T0).parcel
    forged = scan("ORDER_CREATED", 31_536_000_000, "f1", with_shipment=shipment(merchant="attacker-shop"))
    with pytest.raises(InvalidScanError, match="shipment"):
        apply_scan(parcel, forged, RULES, T0)
    assert parcel.merchant == "shop-1" and parcel.to_record()["destination_postcode"] == "4000"


def test_shipment_facts_arrive_after_scans_without_them() -> None:
    parcel = apply_scan(None, scan("ORIGIN_RECEIVED", T0 + HOUR, "r1"), RULES, T0).parcel
    parcel = apply_scan(parcel, scan("ORDER_CREATED", T0, "o1", with_shipment=shipment("express")), RULES, T0).parcel
    assert parcel.service_level == "express"


def test_authority_last_mile_codes_of_another_carrier_are_refused_once_one_carrier_has_the_parcel() -> None:
    parcel = apply_scan(None, scan("LASTMILE_HANDOVER", T0, "h1", carrier="CAINIAO-LGG"), RULES, T0).parcel
    parcel = apply_scan(parcel, scan("LASTMILE_RECEIVED", T0 + HOUR, "r1", carrier="BPOST"), RULES, T0).parcel
    parcel = apply_scan(parcel, scan("OUT_FOR_DELIVERY", T0 + 2 * HOUR, "d1", carrier="BPOST"), RULES, T0).parcel
    before = parcel.to_dict()
    with pytest.raises(InvalidScanError) as refused:
        apply_scan(parcel, scan("DELIVERED", T0 + 3 * HOUR, "x1", carrier="DHL"), RULES, T0)
    assert refused.value.reason_code == "carrier_not_assigned"
    assert parcel.to_dict() == before
    # The assigned carrier goes on; codes before the last mile stay open to others (customs, hubs).
    parcel = apply_scan(parcel, scan("DELIVERED", T0 + 3 * HOUR, "b1", carrier="BPOST"), RULES, T0).parcel
    parcel = apply_scan(parcel, scan("HUB_SORTED", T0 - HOUR, "s1", carrier="CAINIAO-LGG"), RULES, T0).parcel
    assert parcel.status == "Delivered"


def test_authority_the_hubs_handover_scan_names_no_last_mile_carrier() -> None:
    parcel = apply_scan(None, scan("LASTMILE_HANDOVER", T0, "h1", carrier="CAINIAO-LGG"), RULES, T0).parcel
    outcome = apply_scan(parcel, scan("LASTMILE_RECEIVED", T0 + HOUR, "r1", carrier="POSTNL"), RULES, T0)
    assert not outcome.duplicate and outcome.parcel.carrier == "POSTNL"
