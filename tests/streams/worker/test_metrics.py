"""The ``carrier`` and ``route`` labels of parcelstream_sla_events_total: which values become
labels, and the bound on how many one process exports."""

from __future__ import annotations

import logging

import pytest

from producers.gateway.keys import CARRIER_PATTERN
from streams.worker.metrics import (
    MAX_CARRIER_LABELS,
    MAX_ROUTE_LABELS,
    CarrierLabels,
    RouteLabels,
    carrier_label,
    route_label,
)

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
    with caplog.at_level(logging.WARNING, logger="streams.worker.metrics"):
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


ROUTES = ["HGH-LGG-BE", "CN-BE", "CGO-LGG-HUB-1-DE", "BEANR-CNSHA", "CN"]
NOT_ROUTES = ["HGH-LGG-Rue de la Loi 16", "jane@example.com-BE", "-LGG", "X", "A" * 65, "CN-BE\nFR", "深圳-LGG-BE"]


@pytest.mark.parametrize("route", ROUTES)
def test_a_route_of_codes_is_its_own_label(route: str) -> None:
    assert route_label(route) == route


@pytest.mark.parametrize("text", NOT_ROUTES)
def test_a_route_with_free_text_is_other(text: str) -> None:
    # Location codes are free text a publisher writes: an address in one must not become a label.
    assert route_label(text) == "other"


@pytest.mark.parametrize("route", [None, "", " "])
def test_a_route_not_known_yet_is_unknown(route: str | None) -> None:
    assert route_label(route) == "unknown"


def test_routes_beyond_the_limit_count_as_other_and_warn_once(caplog: pytest.LogCaptureFixture) -> None:
    labels = RouteLabels(limit=2)
    with caplog.at_level(logging.WARNING, logger="streams.worker.metrics"):
        shown = [labels(route) for route in ("HGH-LGG-BE", "CN-BE", "CGO-LGG-DE", None, "HGH-LGG-BE", "CN-FR")]
    assert shown == ["HGH-LGG-BE", "CN-BE", "other", "unknown", "HGH-LGG-BE", "other"]
    assert len([record for record in caplog.records if "routes seen" in record.getMessage()]) == 1


def test_the_default_route_limit_is_max_route_labels() -> None:
    labels = RouteLabels()
    routes = [f"R{number:03d}-LGG-BE" for number in range(MAX_ROUTE_LABELS + 1)]
    assert [labels(route) for route in routes] == [*routes[:-1], "other"]
