"""The ``carrier`` label of parcelstream_sla_events_total: which values become labels, and the
bound on how many one process exports."""

from __future__ import annotations

import logging

import pytest

from producers.gateway.keys import CARRIER_PATTERN
from streams.metrics import MAX_CARRIER_LABELS, CarrierLabels, carrier_label

CARRIER_CODES = ["CK", "BPOST", "157", "CAINIAO-LGG", "UPU-CN", "be.customs", "dhl_express", "A" * 32]
NOT_CARRIER_CODES = ["DHL Express", "-CK", ".x", "A" * 33, "ck/1", "Zoë", "jane@example.com", "CK\n1"]


@pytest.mark.parametrize("code", CARRIER_CODES)
def test_a_carrier_code_is_its_own_label(code: str) -> None:
    assert carrier_label(code) == code


@pytest.mark.parametrize("carrier", [None, "", "   "])
def test_a_missing_carrier_is_unknown(carrier: str | None) -> None:
    assert carrier_label(carrier) == "unknown"


@pytest.mark.parametrize("text", NOT_CARRIER_CODES)
def test_free_text_is_other(text: str) -> None:
    assert carrier_label(text) == "other"


def test_surrounding_blanks_are_removed() -> None:
    assert carrier_label(" BPOST\t") == "BPOST"


@pytest.mark.parametrize("value", CARRIER_CODES + NOT_CARRIER_CODES)
def test_the_label_accepts_the_carrier_codes_the_gateway_accepts(value: str) -> None:
    # The same carrier is labelled alike on the gateway's metrics and on the SLA events.
    assert (carrier_label(value) == value) == bool(CARRIER_PATTERN.match(value))


def test_carriers_beyond_the_limit_count_as_other_and_warn_once(caplog: pytest.LogCaptureFixture) -> None:
    labels = CarrierLabels(limit=2)
    with caplog.at_level(logging.WARNING, logger="streams.metrics"):
        assert [labels(code) for code in ("CK", "BPOST", "DHL", "CK", "GLS", None, "x y")] == [
            "CK",
            "BPOST",
            "other",
            "CK",
            "other",
            "unknown",
            "other",
        ]
    assert len([record for record in caplog.records if "carriers seen" in record.getMessage()]) == 1


def test_unknown_and_other_do_not_use_up_the_limit() -> None:
    labels = CarrierLabels(limit=1)
    assert [labels(None), labels("free text"), labels("BPOST")] == ["unknown", "other", "BPOST"]


def test_the_default_limit_is_max_carrier_labels() -> None:
    labels = CarrierLabels()
    codes = [f"C{number:03d}" for number in range(MAX_CARRIER_LABELS + 1)]
    assert [labels(code) for code in codes] == [*codes[:-1], "other"]
