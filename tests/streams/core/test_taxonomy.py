from __future__ import annotations

import pytest

from producers.formats.code_maps import BY_RAW_FORMAT
from schemas.scan_codes import SCAN_CODES
from schemas.statuses import STATUSES
from streams.core.taxonomy import INFORMATIONAL, MILESTONES, TAXONOMY, InvalidScanError, UnknownScanCode, classify


@pytest.mark.parametrize("code", sorted(SCAN_CODES))
def test_every_normalised_code_classifies_into_the_shared_vocabulary(code: str) -> None:
    classification = classify(code)
    assert classification.code == code
    assert classification.status in STATUSES
    assert classification.milestone in MILESTONES
    assert classification.sub_status


@pytest.mark.parametrize(
    ("raw_format", "raw_code"),
    sorted((raw_format, raw_code) for raw_format, table in BY_RAW_FORMAT.items() for raw_code in table),
)
def test_every_carrier_code_of_the_producers_classifies(raw_format: str, raw_code: str) -> None:
    classification = classify(BY_RAW_FORMAT[raw_format][raw_code])
    assert classification.status in STATUSES


def test_taxonomy_has_no_code_outside_the_vocabulary() -> None:
    assert set(TAXONOMY) == set(SCAN_CODES)


def test_sub_statuses_tell_every_code_apart() -> None:
    pairs = [(c.status, c.sub_status) for c in TAXONOMY.values()]
    assert len(pairs) == len(set(pairs))


@pytest.mark.parametrize("code", ["DEP", "delivered", "", "LINEHAUL_DEPARTED "])
def test_unknown_code_is_refused_not_guessed(code: str) -> None:
    with pytest.raises(UnknownScanCode) as error:
        classify(code)
    assert isinstance(error.value, InvalidScanError)
    assert error.value.reason_code == "unknown_code"
    assert repr(code) in error.value.reason


def test_examples_of_the_customer_taxonomy() -> None:
    assert (classify("LINEHAUL_DEPARTED").status, classify("LINEHAUL_DEPARTED").sub_status) == (
        "InTransit",
        "departed_origin",
    )
    assert (classify("IMPORT_CUSTOMS_HELD").status, classify("IMPORT_CUSTOMS_HELD").sub_status) == (
        "CustomsHold",
        "held_import",
    )
    assert (classify("LOST").status, classify("LOST").sub_status) == ("Exception", "lost")
    assert classify("ORDER_CREATED").status == "InfoReceived"


def test_delivered_holds_against_upstream_scans_but_not_against_a_new_delivery_step() -> None:
    delivered = classify("DELIVERED")
    assert delivered.terminal
    assert delivered.holds_against("HUB_SORTED")
    assert delivered.holds_against("LINEHAUL_ARRIVED")
    assert not delivered.holds_against("OUT_FOR_DELIVERY")
    assert not delivered.holds_against("RETURN_TO_SENDER")


def test_every_state_holds_against_an_informational_code() -> None:
    assert set(INFORMATIONAL) == {"CARRIER_INFORMATION"}
    assert all(classify(code).holds_against("CARRIER_INFORMATION") for code in SCAN_CODES)
    assert not classify("CARRIER_INFORMATION").holds_against("LINEHAUL_ARRIVED")


def test_returned_holds_against_everything_and_other_states_hold_against_nothing() -> None:
    returned = classify("RETURNED")
    assert all(returned.holds_against(code) for code in SCAN_CODES)
    for code in SCAN_CODES:
        if code not in {"DELIVERED", "RETURNED"}:
            assert not classify(code).holds_against("ORIGIN_RECEIVED"), code
