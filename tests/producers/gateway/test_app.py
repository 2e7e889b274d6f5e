"""The gateway over real HTTP (uvicorn), the real broker and real Redis: authentication,
authorisation, limits, all-or-nothing validation, idempotent retries and broker outages."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from deploy.embedded import free_port
from producers.gateway.idempotency import IdempotencyStore
from producers.gateway.keys import IssuedKey
from producers.publisher import Publisher
from schemas.topics import TopicNames
from tests.producers.conftest import ReadMessage
from tests.producers.gateway.conftest import RunningGateway, scan

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parent.parent / "formats" / "fixtures"
ReadTopic = Callable[[str, int], list[ReadMessage]]


@pytest.fixture
def gateway(gateway_factory: Callable[..., RunningGateway]) -> RunningGateway:
    # The format fixtures are dated 2024: older than the default PARCELSTREAM_MAX_AGE.
    return gateway_factory(max_age=100 * 365 * 86400)


@pytest.fixture
def key(create_key: Callable[..., IssuedKey]) -> IssuedKey:
    return create_key("CK", ("flight", "warehouse"))


@pytest.fixture
def client(gateway: RunningGateway, key: IssuedKey) -> Iterator[httpx.Client]:
    with gateway.client(key.key) as http:
        yield http


def scan_ids(messages: list[ReadMessage]) -> list[str]:
    return sorted(message.decoded.value["event_id"] for message in messages)


def test_unknown_missing_or_revoked_key_gets_401(gateway: RunningGateway, key: IssuedKey) -> None:
    batch = {"records": [scan("1")]}
    key_id = key.api_key.key_id
    forged = f"psk_{key_id}_{'x' * 43}"  # the real key id with a wrong secret
    for presented in (None, "not-a-key", forged, key.key[:-1] + ("A" if key.key[-1] != "A" else "B")):
        with gateway.client(presented) as http:
            response = http.post("/v1/scans", json=batch)
        assert response.status_code == 401, presented
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"] == "unauthorized"

    from typer.testing import CliRunner

    from producers.gateway.cli import app

    env = {
        "PARCELSTREAM_REDIS_URL": gateway.settings.redis_url,
        "PARCELSTREAM_REDIS_PREFIX": gateway.settings.redis_prefix,
    }
    with gateway.client(key.key) as http:
        assert http.post("/v1/formats/jsonl", content=b"").status_code == 202  # valid before revoking
        result = CliRunner().invoke(app, ["keys", "revoke", key_id], env=env)
        assert result.exit_code == 0, result.output
        assert http.post("/v1/scans", json=batch).status_code == 401


def test_record_of_another_carrier_or_source_gets_403_naming_it(
    client: httpx.Client, topics: TopicNames, read_topic: ReadTopic
) -> None:
    response = client.post("/v1/scans", json={"records": [scan("1"), scan("2", carrier="XX")]})
    assert response.status_code == 403
    body = response.json()
    assert "records[1]" in body["message"]
    assert [(p["field"], p["reason_code"]) for p in body["problems"]] == [("records[1].carrier", "carrier_mismatch")]

    response = client.post("/v1/scans", json={"records": [scan("3", source="lastmile")]})
    assert response.status_code == 403
    assert response.json()["problems"][0]["field"] == "records[0].source"

    # The carrier CSV names BPOST in its carrier column: not this key's carrier.
    response = client.post("/v1/formats/carrier-csv", content=(FIXTURES / "carrier_lastmile.csv").read_bytes())
    assert response.status_code == 403
    assert read_topic(topics.scans, 0) == []


def test_oversized_body_and_too_many_records_get_413(
    gateway_factory: Callable[..., RunningGateway], key: IssuedKey
) -> None:
    gateway = gateway_factory(gateway_max_body_bytes=2000, gateway_max_records=2, gateway_burst=10)
    with gateway.client(key.key) as http:
        big = {"records": [scan(str(n), reason="x" * 500) for n in range(5)]}
        response = http.post("/v1/scans", json=big)
        assert response.status_code == 413
        assert response.json()["error"] == "body_too_large"

        # Streamed without a Content-Length: the limit holds while reading.
        chunks = [json.dumps(big).encode()[i : i + 500] for i in range(0, len(json.dumps(big)), 500)]
        response = http.post("/v1/scans", content=iter(chunks), headers={"Content-Type": "application/json"})
        assert response.status_code == 413

        response = http.post("/v1/scans", json={"records": [scan("1"), scan("2"), scan("3")]})
        assert response.status_code == 413
        assert response.json()["error"] == "too_many_records"


def test_invalid_record_rejects_the_whole_batch_with_field_paths(
    client: httpx.Client, topics: TopicNames, read_topic: ReadTopic
) -> None:
    records = [scan("1"), scan("2", event_time="yesterday"), scan("3"), "not a record"]
    response = client.post("/v1/scans", json={"records": records})
    assert response.status_code == 422
    problems = response.json()["problems"]
    assert {(p["index"], p["field"]) for p in problems} == {(1, "records[1].event_time"), (3, "records[3]")}
    assert read_topic(topics.scans, 0) == []
    dead_letters = [message.decoded.value for message in read_topic(topics.dead_letters, 2)]
    assert sorted(letter["source_reference"] for letter in dead_letters) == [
        "/v1/scans CK records[1]",
        "/v1/scans CK records[3]",
    ]
    assert {letter["stage"] for letter in dead_letters} == {"gateway"}
    assert json.loads(next(d["payload"] for d in dead_letters if d["source_reference"].endswith("[1]")))[
        "event_time"
    ] == ("yesterday")


def test_accepted_batch_is_published_once_even_when_retried(
    client: httpx.Client, topics: TopicNames, read_topic: ReadTopic
) -> None:
    batch = {"records": [scan("1"), scan("2"), {**scan("3"), "tracking_number": None, "handling_unit": "BAG-7"}]}
    first = client.post("/v1/scans", json=batch, headers={"Idempotency-Key": "batch-0001"})
    assert first.status_code == 202, first.text
    assert first.json()["event_ids"] == ["1", "2", "3"]
    assert "idempotent-replayed" not in first.headers
    retry = client.post("/v1/scans", json=batch, headers={"Idempotency-Key": "batch-0001"})
    assert retry.status_code == 202
    assert retry.json() == first.json()
    assert retry.headers["idempotent-replayed"] == "true"
    messages = read_topic(topics.scans, 3)
    assert scan_ids(messages) == ["1", "2", "3"]
    assert {message.key for message in messages} == {b"LP000000001CN", b"LP000000002CN", b"BAG-7"}

    other_body = client.post("/v1/scans", json={"records": [scan("4")]}, headers={"Idempotency-Key": "batch-0001"})
    assert other_body.status_code == 422
    assert other_body.json()["error"] == "idempotency_key_reused"
    assert scan_ids(read_topic(topics.scans, 3)) == ["1", "2", "3"]

    # /metrics is on the operations port (the CLI's --metrics-port), never on the public one.
    assert client.get("/metrics").status_code == 404
    labels = {"carrier": "CK", "endpoint": "/v1/scans", "status_code": "202"}
    assert (REGISTRY.get_sample_value("parcelstream_ingest_requests_total", labels) or 0) >= 1


def test_retry_while_the_first_is_in_flight_gets_409(
    client: httpx.Client, key: IssuedKey, redis_url: str, redis_prefix: str
) -> None:
    body = json.dumps({"records": [scan("1")]}).encode()

    async def claim() -> None:  # what the first request does while the broker has not answered yet
        redis = Redis.from_url(redis_url, decode_responses=True)
        try:
            store = IdempotencyStore(redis, redis_prefix, ttl_s=60, claim_ttl_s=60)
            outcome = await store.begin("CK", "batch-0002", hashlib.sha256(body).hexdigest())
            assert outcome.outcome == "proceed"
        finally:
            await redis.aclose()

    asyncio.run(claim())
    headers = {"Idempotency-Key": "batch-0002", "Content-Type": "application/json"}
    response = client.post("/v1/scans", content=body, headers=headers)
    assert response.status_code == 409
    assert response.json()["error"] == "idempotency_key_in_use"


def test_broker_down_gets_503_and_a_later_retry_succeeds(
    gateway_factory: Callable[..., RunningGateway],
    key: IssuedKey,
    topics: TopicNames,
    read_topic: ReadTopic,
) -> None:
    dead_publisher = Publisher(
        f"127.0.0.1:{free_port()}", topics, stage="gateway", **{"message.timeout.ms": 1000, "log_level": 0}
    )
    down = gateway_factory(publisher=dead_publisher, gateway_delivery_timeout=1.0)
    batch = {"records": [scan("1")]}
    with down.client(key.key) as http:
        response = http.post("/v1/scans", json=batch, headers={"Idempotency-Key": "batch-0003"})
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["error"] == "broker_unavailable"

    # The idempotency key was not kept: the retry (here through a healthy gateway) publishes.
    up = gateway_factory()
    with up.client(key.key) as http:
        retry = http.post("/v1/scans", json=batch, headers={"Idempotency-Key": "batch-0003"})
    assert retry.status_code == 202
    assert "idempotent-replayed" not in retry.headers
    assert scan_ids(read_topic(topics.scans, 1)) == ["1"]


def test_rate_limit_gets_429_with_retry_after(gateway_factory: Callable[..., RunningGateway], key: IssuedKey) -> None:
    gateway = gateway_factory(gateway_rate_limit=0.01, gateway_burst=2, gateway_max_records=2)
    with gateway.client(key.key) as http:
        assert http.post("/v1/scans", json={"records": [scan("1"), scan("2")]}).status_code == 202
        response = http.post("/v1/scans", json={"records": [scan("3")]})
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) >= 50  # one record at 0.01 records/s


def test_carrier_format_is_attributed_to_the_key(
    gateway: RunningGateway, create_key: Callable[..., IssuedKey], topics: TopicNames, read_topic: ReadTopic
) -> None:
    bpost = create_key("BPOST", ("lastmile",))
    with gateway.client(bpost.key) as http:
        response = http.post("/v1/formats/carrier-csv", content=(FIXTURES / "carrier_lastmile.csv").read_bytes())
        assert response.status_code == 202, response.text
        assert http.post("/v1/formats/fsu", content=b"this is no FSU message").status_code == 422
        assert http.get("/healthz").json() == {"status": "ok"}
    accepted = response.json()
    scans = [message.decoded.value for message in read_topic(topics.scans, accepted["scans"])]
    assert sorted(scan["event_id"] for scan in scans) == sorted(accepted["event_ids"])
    assert {scan["carrier"] for scan in scans} == {"BPOST"}
    assert accepted["scans"] == len(scans) > 0


def test_xfsu_document_is_published_and_an_xml_bomb_refused(
    client: httpx.Client, topics: TopicNames, read_topic: ReadTopic
) -> None:
    xfsu = (FIXTURES / "iata_xfsu" / "bkd_rcs_acceptance.xml").read_bytes()
    response = client.post("/v1/formats/xfsu", content=xfsu, headers={"Content-Type": "application/xml"})
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["scans"] == 2

    bomb = client.post("/v1/formats/xfsu", content=(FIXTURES / "iata_xfsu" / "billion_laughs.xml").read_bytes())
    assert bomb.status_code == 422
    assert bomb.json()["error"] == "unreadable_document"
    assert "document type declaration (DTD) is refused" in bomb.json()["message"]

    scans = [message.decoded.value for message in read_topic(topics.scans, 2)]
    assert sorted(scan["event_id"] for scan in scans) == sorted(accepted["event_ids"])
    assert {(scan["raw_format"], scan["carrier"], scan["handling_unit"]) for scan in scans} == {
        ("iata-xfsu", "CK", "020-12345675")
    }
