"""Security: API keys stored hashed and compared in constant time, and no personal data in any stage's
logs or /metrics. Covered elsewhere, not repeated here: a carrier publishing as another gets 403
(tests/producers/gateway/test_app.py), the tracking API's identical 404 for unknown parcel / wrong
postcode / wrong token (tests/consumers/tracking/test_app.py), webhook signatures and old timestamps
(tests/consumers/notifier/test_signing.py)."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import inspect

import pytest
import redis
from redis.asyncio import Redis as AsyncRedis

from consumers.notifier.merchant_keys import MerchantKeyStore
from consumers.notifier.model import new_subscription
from consumers.notifier.store import SubscriptionStore
from consumers.read_model import Keys
from producers.gateway.keys import KeyStore
from producers.publisher import Publisher
from producers.simulator import SimulationConfig, simulate
from schemas import api_keys
from schemas.api_keys import CARRIER_KEYS
from schemas.topics import TopicNames
from tests.consumers.notifier.conftest import WebhookReceiver
from tests.stages import StageLauncher, wait_for

EMAIL = "jane.doe.pii@example.com"
PHONE = "+32 470 12 34 56"
NAME = "Janine Doe-Pii"
STREET = "Rue de la Loi 16"
POSTCODE = "PII9Z7"
PERSONAL_DATA = (EMAIL, PHONE, NAME, STREET, POSTCODE)
MERCHANT = f"{NAME} shop <{EMAIL}>"  # merchants are free text a carrier sends
FREE_TEXT = f"deliver to {NAME}, {STREET}; call {PHONE} or write {EMAIL}"


@pytest.mark.integration
def test_api_keys_are_stored_hashed_and_compared_in_constant_time(redis_url: str, redis_prefix: str) -> None:
    async def create_and_dump() -> tuple[str, dict[str, str]]:
        client = AsyncRedis.from_url(redis_url, decode_responses=True)
        try:
            issued = await KeyStore(client, redis_prefix).create("CK", ["flight"])
            stored = {}
            async for key in client.scan_iter(match=f"{redis_prefix}:*"):
                value = await (client.hgetall(key) if await client.type(key) == "hash" else client.smembers(key))
                stored[key] = repr(value)
            return issued.key, stored
        finally:
            await client.aclose()

    plain_key, stored = asyncio.run(create_and_dump())
    parts = CARRIER_KEYS.split(plain_key)
    assert parts is not None
    secret = parts[1]
    assert stored, "the key should be stored"
    assert not [key for key, value in stored.items() if secret in value or secret in key]
    assert any(hashlib.sha256(secret.encode()).hexdigest() in value for value in stored.values())
    # Constant time: both stores check secrets only through secret_matches, whose hash comparison is
    # hmac.compare_digest, also run (against a dummy hash of the same length) for an unknown key id.
    for store in (KeyStore, MerchantKeyStore):
        source = inspect.getsource(store.authenticate)
        assert "secret_matches(" in source
        assert " == " not in source
    shared = inspect.getsource(api_keys.secret_matches)
    assert "hmac.compare_digest(" in shared and "_NO_HASH" in shared
    assert " == " not in shared
    assert len(api_keys._NO_HASH) == len(hashlib.sha256(b"").hexdigest())
    print(f"\napi keys: {len(stored)} Redis entries, secret found in 0, SHA-256 found in 1")


def personal_simulation(parcels: int) -> list[tuple[str, dict]]:
    """A simulation with personal data in every free-text field a carrier could send."""
    sim = simulate(SimulationConfig(seed=5, parcels=parcels, start_ms=1_767_225_600_000))
    records = []
    for record in sim.records:
        value = copy.deepcopy(record.value)
        if record.kind == "scan":
            value["reason"] = FREE_TEXT
            if value.get("location"):
                value["location"]["name"] = f"{STREET}, c/o {NAME}"
            if value.get("shipment"):
                value["shipment"]["destination_postcode"] = POSTCODE
                value["shipment"]["merchant"] = MERCHANT
        records.append((record.kind, value))
    return records


@pytest.mark.e2e
def test_no_personal_data_in_any_stage_log_or_metrics(
    bootstrap_servers: str,
    topics: TopicNames,
    stages: StageLauncher,
    webhook_receiver: WebhookReceiver,
    redis_url: str,
    redis_prefix: str,
) -> None:
    client = redis.Redis.from_url(redis_url)
    url = webhook_receiver.url("/hooks", "pii-secret")
    SubscriptionStore(client, redis_prefix).add(
        new_subscription(scope="merchant", target=MERCHANT, channel="webhook", address=url, secret="pii-secret")
    )
    worker = stages.worker(topics)
    projector = stages.projector(topics, redis_url, redis_prefix)
    notifier = stages.notifier(topics, redis_url, redis_prefix)
    processes = [worker, projector, notifier]

    records = personal_simulation(20)
    publisher = Publisher(bootstrap_servers, topics)
    for kind, value in records:
        (publisher.publish_scan if kind == "scan" else publisher.publish_manifest)(value)
    # One poison scan carrying the same text: dead-lettering must not log it either.
    poison = next(value for kind, value in records if kind == "scan" and value.get("tracking_number"))
    publisher.publish_scan({**poison, "event_id": "pii-poison", "code": f"NOT_A_CODE {EMAIL}"})
    assert publisher.flush().ok
    tracking_numbers = {
        value["tracking_number"] for kind, value in records if kind == "scan" and value["tracking_number"]
    }
    keys = Keys(redis_prefix)
    wait_for(
        lambda: all(client.exists(keys.parcel(tn)) for tn in tracking_numbers), 90, "every parcel in Redis", processes
    )
    wait_for(lambda: len(webhook_receiver.delivered("/hooks")) >= len(tracking_numbers), 60, "deliveries", processes)
    assert any(EMAIL in str(d.body) for d in webhook_receiver.delivered("/hooks")), "the data did flow through"

    pages = {process.name: process.metrics_text() for process in processes}
    for process in processes:
        assert process.stop() == 0, process.log_tail()
    logs = {process.name: process.log_text() for process in processes}
    client.close()

    found = [
        (where, kind, marker)
        for kind, texts in (("log", logs), ("metrics", pages))
        for where, text in texts.items()
        for marker in PERSONAL_DATA
        if marker in text
    ]
    sizes = ", ".join(f"{name} log {len(logs[name]):,} B / metrics {len(pages[name]):,} B" for name in logs)
    print(
        f"\npersonal data scan: {len(PERSONAL_DATA)} markers in {len(logs)} logs and {len(pages)} /metrics pages "
        f"({sizes}); found {len(found)}: {found}"
    )
    assert found == []
