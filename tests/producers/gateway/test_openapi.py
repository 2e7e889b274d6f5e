"""The gateway's OpenAPI document: the checked-in copy is current, and a schemathesis run against a
live gateway (real broker, real Redis) finds no server error and no undocumented answer."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from producers.gateway.app import create_app
from producers.gateway.keys import IssuedKey
from producers.gateway.settings import GatewaySettings
from tests.producers.gateway.conftest import RunningGateway

OPENAPI_FILE = Path(__file__).resolve().parents[3] / "docs" / "openapi-gateway.json"


def current_openapi() -> str:
    return json.dumps(create_app(GatewaySettings()).openapi(), indent=2, ensure_ascii=False) + "\n"


def test_checked_in_openapi_is_current() -> None:
    current = current_openapi()
    if not OPENAPI_FILE.exists() or OPENAPI_FILE.read_text() != current:
        OPENAPI_FILE.write_text(current)
        pytest.fail(f"{OPENAPI_FILE.name} was out of date and has been regenerated: review and commit it")
    spec = json.loads(current)
    assert spec["components"]["securitySchemes"]["carrierApiKey"] == {
        "type": "http",
        "description": "psk_<id>_<secret>",
        "scheme": "bearer",
    }
    for path in ("/v1/scans", "/v1/formats/{format}"):
        operation = spec["paths"][path]["post"]
        assert operation["security"] == [{"carrierApiKey": []}]
        assert {"202", "401", "403", "413", "422", "429", "503"} <= set(operation["responses"])


schema = schemathesis.openapi.from_dict(json.loads(current_openapi()))


@pytest.mark.integration
@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_server_error(
    case: schemathesis.Case,
    gateway_factory: Callable[..., RunningGateway],
    create_key: Callable[..., IssuedKey],
    request: pytest.FixtureRequest,
) -> None:
    # One gateway and key per operation (this test runs once per operation, many examples each).
    node = request.node
    if not hasattr(node, "_gateway"):
        node._gateway = (gateway_factory(), create_key("CK", ("flight", "warehouse", "lastmile")))
    gateway, key = node._gateway
    case.call_and_validate(
        base_url=gateway.url,
        headers={"Authorization": f"Bearer {key.key}"},
        checks=[not_a_server_error, status_code_conformance, response_schema_conformance],
    )
