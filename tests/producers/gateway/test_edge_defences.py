"""Hostile and careless input at the gateway (issue 14): event times out of range, records outside
the API key's scope, forged shipment facts, and JSON nested deep enough to exhaust the stack."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import redis
from redis.asyncio import Redis
from typer.testing import CliRunner

from producers.gateway.cli import app
from producers.gateway.keys import DEFAULT_CODES, IssuedKey, KeyStore
from schemas.topics import TopicNames
from tests.producers.conftest import ReadMessage
from tests.producers.gateway.conftest import RunningGateway, scan

pytestmark = pytest.mark.integration

ReadTopic = Callable[[str, int], list[ReadMessage]]


def _days_from_now(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat(timespec="seconds")


def _order(event_id: str, **overrides: object) -> dict[str, object]:
    """An ORDER_CREATED scan carrying shipment facts (merchant, destination postcode)."""
    record = scan(
        event_id,
        source="warehouse",
        code="ORDER_CREATED",
        raw_code="ORDER",
        event_time=_days_from_now(0),
        shipment={
            "origin_country": "CN",
            "destination_country": "BE",
            "destination_postcode": "4000",
            "merchant": "forger",
        },
    )
    record.update(overrides)
    return record


def _create(redis_url: str, redis_prefix: str, carrier: str, sources: list[str], codes: list[str] | None) -> IssuedKey:
    async def run() -> IssuedKey:
        client = Redis.from_url(redis_url, decode_responses=True)
        try:
            return await KeyStore(client, redis_prefix).create(carrier, sources, codes)
        finally:
            await client.aclose()

    return asyncio.run(run())


def test_event_time_out_of_range_gets_422_and_is_dead_lettered(
    gateway_factory: Callable[..., RunningGateway],
    create_key: Callable[..., IssuedKey],
    topics: TopicNames,
    read_topic: ReadTopic,
) -> None:
    gateway = gateway_factory()
    key = create_key("CK", ("flight",))
    records = [
        scan("1", event_time=_days_from_now(-2)),
        scan("2", event_time="2100-01-01T00:00:00Z"),
        scan("3", event_time="1971-01-01T00:00:00Z"),
    ]
    with gateway.client(key.key) as http:
        response = http.post("/v1/scans", json={"records": records})
        assert response.status_code == 422
        problems = response.json()["problems"]
        assert [(p["index"], p["field"], p["reason_code"]) for p in problems] == [
            (1, "records[1].event_time", "event_time_out_of_range"),
            (2, "records[2].event_time", "event_time_out_of_range"),
        ]
        assert "later than now" in problems[0]["message"] and "PARCELSTREAM_MAX_FUTURE" in problems[0]["message"]
        assert "older than now" in problems[1]["message"]
        assert http.post("/v1/scans", json={"records": records[:1]}).status_code == 202
    dead_letters = [m.decoded.value for m in read_topic(topics.dead_letters, 2)]
    assert {d["reason_code"] for d in dead_letters} == {"event_time_out_of_range"}
    assert [m.decoded.value["event_id"] for m in read_topic(topics.scans, 1)] == ["1"]

    # The bounds are settings: a gateway allowing 3 days ahead takes a scan dated in 2 days.
    wider = gateway_factory(max_future=3 * 86400)
    with wider.client(key.key) as http:
        assert http.post("/v1/scans", json={"records": [scan("4", event_time=_days_from_now(2))]}).status_code == 202


def test_authority_codes_outside_the_key_scope_get_403_naming_the_code(
    gateway_factory: Callable[..., RunningGateway], redis_url: str, redis_prefix: str, topics: TopicNames
) -> None:
    gateway = gateway_factory()
    key = _create(redis_url, redis_prefix, "CK", ["flight"], ["LINEHAUL_DEPARTED,LINEHAUL_ARRIVED"])
    assert key.api_key.codes == ("LINEHAUL_DEPARTED", "LINEHAUL_ARRIVED")
    with gateway.client(key.key) as http:
        ok = http.post("/v1/scans", json={"records": [scan("1", event_time=_days_from_now(0))]})
        assert ok.status_code == 202, ok.text
        response = http.post("/v1/scans", json={"records": [scan("2", code="DELIVERED", raw_code="DLV")]})
    assert response.status_code == 403
    (problem,) = response.json()["problems"]
    assert (problem["field"], problem["reason_code"]) == ("records[0].code", "code_not_allowed")
    assert "'DELIVERED'" in problem["message"]


def test_shipment_facts_only_from_keys_granted_them(
    gateway_factory: Callable[..., RunningGateway],
    redis_url: str,
    redis_prefix: str,
    read_topic: ReadTopic,
    topics: TopicNames,
) -> None:
    gateway = gateway_factory()
    carrier_key = _create(redis_url, redis_prefix, "CK", ["warehouse", "flight"], None)  # default scope
    assert not carrier_key.api_key.shipment_facts
    with gateway.client(carrier_key.key) as http:
        forged = http.post("/v1/scans", json={"records": [_order("1")]})
        assert forged.status_code == 403
        assert [(p["field"], p["reason_code"]) for p in forged.json()["problems"]] == [
            ("records[0].code", "shipment_facts_not_allowed")
        ]
        # The forgery, dated 1971 to win "earliest ORDER_CREATED": refused for the key first (403).
        dated = http.post("/v1/scans", json={"records": [_order("9", event_time="1971-01-01T00:00:00Z")]})
        assert dated.status_code == 403, dated.text
        # A shipment riding on another code is a shipment fact too.
        riding = _order("2", code="HUB_RECEIVED", raw_code="RCV")
        response = http.post("/v1/scans", json={"records": [riding]})
        assert response.status_code == 403
        assert response.json()["problems"][0]["field"] == "records[0].shipment"

    warehouse_key = _create(redis_url, redis_prefix, "CK", ["warehouse"], ["ORDER_CREATED", "ORIGIN_RECEIVED"])
    assert warehouse_key.api_key.shipment_facts
    with gateway.client(warehouse_key.key) as http:
        response = http.post("/v1/scans", json={"records": [_order("3")]})
        assert response.status_code == 202, response.text
    assert [m.decoded.value["event_id"] for m in read_topic(topics.scans, 1)] == ["3"]


def test_authority_keys_stored_before_scopes_keep_their_codes_but_not_shipment_facts(
    gateway_factory: Callable[..., RunningGateway],
    create_key: Callable[..., IssuedKey],
    redis_url: str,
    redis_prefix: str,
) -> None:
    gateway = gateway_factory()
    key = create_key("CK", ("flight", "warehouse"))
    # A key record as stored before scopes existed: no "codes" field.
    client = redis.Redis.from_url(redis_url)
    try:
        client.hdel(f"{redis_prefix}:gateway:key:{key.api_key.key_id}", "codes")
    finally:
        client.close()
    with gateway.client(key.key) as http:
        assert http.post("/v1/scans", json={"records": [scan("1", event_time=_days_from_now(0))]}).status_code == 202
        arrived = scan("2", code="LINEHAUL_ARRIVED", raw_code="ARR", event_time=_days_from_now(0))
        assert http.post("/v1/scans", json={"records": [arrived]}).status_code == 202
        assert http.post("/v1/scans", json={"records": [_order("3")]}).status_code == 403

    env = {"PARCELSTREAM_REDIS_URL": redis_url, "PARCELSTREAM_REDIS_PREFIX": redis_prefix, "COLUMNS": "300"}
    listed = CliRunner().invoke(app, ["keys", "list"], env=env)
    assert listed.exit_code == 0
    assert "all but ORDER_CREATED" in " ".join(listed.stdout.split())
    assert len(DEFAULT_CODES) > 20 and "ORDER_CREATED" not in DEFAULT_CODES


def test_keys_create_with_scopes_from_the_command_line(redis_url: str, redis_prefix: str) -> None:
    env = {"PARCELSTREAM_REDIS_URL": redis_url, "PARCELSTREAM_REDIS_PREFIX": redis_prefix, "COLUMNS": "300"}
    runner = CliRunner()
    created = runner.invoke(
        app,
        ["keys", "create", "--carrier", "EU", "--sources", "warehouse,lastmile", "--codes", "ORDER_CREATED,HUB_SORTED"],
        env=env,
    )
    assert created.exit_code == 0, created.output
    listed = " ".join(runner.invoke(app, ["keys", "list"], env=env).stdout.split())
    assert "ORDER_CREATED, HUB_SORTED" in listed
    assert "warehouse, lastmile" in listed
    bad = runner.invoke(
        app, ["keys", "create", "--carrier", "EU", "--source", "warehouse", "--codes", "TELEPORT"], env=env
    )
    assert bad.exit_code == 1
    assert "unknown scan code(s) TELEPORT" in bad.output


def test_recursion_deep_json_gets_422_not_500(
    gateway_factory: Callable[..., RunningGateway], create_key: Callable[..., IssuedKey]
) -> None:
    gateway = gateway_factory()
    key = create_key("CK", ("flight",))
    deep = b'{"records": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}"
    with gateway.client(key.key) as http:
        response = http.post("/v1/scans", content=deep, headers={"Content-Type": "application/json"})
        assert response.status_code == 422
        assert response.json()["error"] == "too_deep"
        lines = b'{"event_id": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"
        response = http.post("/v1/formats/jsonl", content=lines)
        assert response.status_code == 422
        assert response.json()["problems"][0]["reason_code"] == "too_deep"
        # The gateway still serves.
        ok = http.post("/v1/scans", json={"records": [scan("1", event_time=_days_from_now(0))]})
        assert ok.status_code == 202
