"""The merchants' subscriptions API, served by the tracking service on a real uvicorn server over real
Redis: authentication, validation, isolation between merchants, and a subscription created over HTTP
driving the real notifier."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from consumers.notifier.api import MAX_SUBSCRIPTIONS_PER_MERCHANT, PREFIX
from consumers.notifier.merchant_keys import IssuedMerchantKey, MerchantKeyStore
from consumers.notifier.model import new_subscription
from consumers.notifier.service import NotifierSummary, run_notifier
from consumers.notifier.settings import NotifierSettings
from consumers.notifier.store import SubscriptionStore
from consumers.settings import ConsumerSettings
from consumers.tracking.app import create_app
from deploy.embedded import free_port
from schemas.topics import TopicNames
from tests.stages import wait_for

from .conftest import WebhookReceiver, publish_updates, status_update

pytestmark = pytest.mark.integration

MERCHANT = "Gaufres & Co"
OTHER_MERCHANT = "Brasserie des Ardennes"
HOOK = "https://hooks.gaufres.example/parcels"


@pytest.fixture
def sync_redis(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def issue_key(sync_redis: redis.Redis, redis_prefix: str) -> Callable[[str], IssuedMerchantKey]:
    return lambda merchant: MerchantKeyStore(sync_redis, redis_prefix).create(merchant, now_ms=1)


@pytest.fixture
def base_url(redis_url: str, redis_prefix: str, tracking_server: Callable[[ConsumerSettings], str]) -> str:
    return tracking_server(ConsumerSettings(redis_url=redis_url, redis_prefix=redis_prefix))


def client_for(base_url: str, key: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return httpx.Client(base_url=base_url, headers=headers, timeout=10)


def test_create_list_get_and_delete_with_a_write_only_secret(
    base_url: str, issue_key: Callable[[str], IssuedMerchantKey], sync_redis: redis.Redis, redis_prefix: str
) -> None:
    key = issue_key(MERCHANT)
    with client_for(base_url, key.key) as api:
        created = api.post(PREFIX, json={"webhook_url": HOOK, "statuses": ["Delivered", "OutForDelivery"]})
        assert created.status_code == 201, created.text
        body = created.json()
        subscription_id = body["subscription_id"]
        assert created.headers["location"] == f"{PREFIX}/{subscription_id}"
        assert body["merchant"] == MERCHANT and body["channel"] == "webhook" and body["webhook_url"] == HOOK
        assert body["email"] is None and body["language"] == "en"
        assert body["statuses"] == ["OutForDelivery", "Delivered"]  # taxonomy order
        generated_secret = body["secret"]
        assert len(generated_secret) >= 32

        own_secret = "merchant-chosen-secret-0123456789"
        email = api.post(PREFIX, json={"merchant": MERCHANT, "email": "ops@gaufres.example", "language": "fr"}).json()
        assert email["channel"] == "email" and email["email"] == "ops@gaufres.example" and email["secret"] is None
        chosen = api.post(PREFIX, json={"webhook_url": HOOK + "/2", "secret": own_secret})
        assert chosen.status_code == 201 and chosen.json()["secret"] is None  # not echoed back

        listed = api.get(PREFIX)
        assert listed.status_code == 200
        ids = [s["subscription_id"] for s in listed.json()["subscriptions"]]
        assert sorted(ids) == sorted([subscription_id, email["subscription_id"], chosen.json()["subscription_id"]])
        one = api.get(f"{PREFIX}/{subscription_id}")
        assert one.status_code == 200
        assert one.json() == {k: v for k, v in body.items() if k != "secret"}
        for answer in (listed, one):
            assert generated_secret not in answer.text and own_secret not in answer.text and "secret" not in answer.text

        # What the API stored is what the notifier reads: the returned secret signs its webhooks.
        store = SubscriptionStore(sync_redis, redis_prefix)
        stored = store.get(subscription_id)
        assert stored is not None and stored.secret == generated_secret
        stored_chosen = store.get(chosen.json()["subscription_id"])
        assert stored_chosen is not None and stored_chosen.secret == own_secret

        deleted = api.delete(f"{PREFIX}/{subscription_id}")
        assert deleted.status_code == 204 and deleted.content == b""
        assert store.get(subscription_id) is None
        assert api.get(f"{PREFIX}/{subscription_id}").status_code == 404
        assert api.delete(f"{PREFIX}/{subscription_id}").status_code == 404
        assert subscription_id not in api.get(PREFIX).text


def test_missing_wrong_and_revoked_keys_get_401_before_the_body_is_read(
    base_url: str, issue_key: Callable[[str], IssuedMerchantKey], sync_redis: redis.Redis, redis_prefix: str
) -> None:
    key = issue_key(MERCHANT)
    key_id = key.merchant_key.key_id
    revoked = issue_key(MERCHANT)
    MerchantKeyStore(sync_redis, redis_prefix).revoke(revoked.merchant_key.key_id, now_ms=2)
    authorizations = [
        {},
        {"Authorization": "Bearer not-a-key"},
        {"Authorization": key.key},  # no scheme
        {"Authorization": f"Basic {key.key}"},
        {"Authorization": f"Bearer pmk_{key_id}_{'x' * 43}"},  # right id, wrong secret
        {"Authorization": f"Bearer pmk_{'0' * 16}_{key.key.rsplit('_', 1)[1]}"},  # unknown id, a real secret
        {"Authorization": f"Bearer {key.key.replace('pmk_', 'psk_')}"},  # the form of a carrier key
        {"Authorization": f"Bearer {revoked.key}"},
    ]
    for attempt in authorizations:
        with httpx.Client(base_url=base_url, headers=attempt, timeout=10) as api:
            answers = [
                api.get(PREFIX),
                api.get(f"{PREFIX}/0123456789abcdef"),
                api.delete(f"{PREFIX}/0123456789abcdef"),
                api.post(PREFIX, json={"language": "es", "statuses": ["Lost"]}),  # invalid, but 401 first
            ]
        for answer in answers:
            assert answer.status_code == 401, (attempt, answer.text)
            assert answer.headers["www-authenticate"] == "Bearer"
            assert answer.json()["error"] == "unauthorized"
    with client_for(base_url, key.key) as api:
        assert api.get(PREFIX).status_code == 200  # the valid key still works


def test_invalid_requests_get_422_naming_every_field(
    base_url: str, issue_key: Callable[[str], IssuedMerchantKey], sync_redis: redis.Redis, redis_prefix: str
) -> None:
    cases: list[tuple[Any, set[str]]] = [
        ({"webhook_url": HOOK, "language": "es"}, {"body.language"}),
        ({"webhook_url": HOOK, "statuses": ["Delivered", "Lost"]}, {"body.statuses.1"}),
        ({"webhook_url": "ftp://files.example/x"}, {"body.webhook_url"}),
        ({"webhook_url": "hooks.example/no-scheme"}, {"body.webhook_url"}),
        ({"webhook_url": "https://hooks.example/a b"}, {"body.webhook_url"}),
        ({"email": "not-an-address"}, {"body.email"}),
        ({"webhook_url": HOOK, "email": "ops@shop.example"}, {"body"}),
        ({"language": "fr"}, {"body"}),
        ({"webhook_url": HOOK, "secret": "short"}, {"body.secret"}),
        ({"email": "ops@shop.example", "secret": "a-long-enough-secret-1234"}, {"body.secret"}),
        ({"webhook_url": HOOK, "scope": "tracking_number"}, {"body.scope"}),
        ({"webhook_url": HOOK, "language": "xx", "statuses": "Delivered"}, {"body.language", "body.statuses"}),
        ([HOOK], {"body"}),
    ]
    with client_for(base_url, issue_key(MERCHANT).key) as api:
        for payload, fields in cases:
            answer = api.post(PREFIX, json=payload)
            assert answer.status_code == 422, (payload, answer.text)
            body = answer.json()
            assert body["error"] == "invalid_request" and body["message"]
            assert {problem["field"] for problem in body["problems"]} == fields, (payload, body)
            assert all(problem["message"] for problem in body["problems"])
        for garbage in (b"{not json", b"\x1c\xff;"):
            garbled = api.post(PREFIX, content=garbage, headers={"Content-Type": "application/json"})
            assert garbled.status_code == 422 and garbled.json()["problems"][0]["field"].startswith("body")
        # The customer endpoints keep FastAPI's own validation answers.
        customer = api.get("/v1/parcels/LX123456785CN", params={"postcode": "1" * 30})
        assert customer.status_code == 422 and customer.json()["detail"][0]["loc"] == ["query", "postcode"]
    assert SubscriptionStore(sync_redis, redis_prefix).all() == []  # nothing invalid was stored


def test_a_merchant_sees_and_deletes_only_its_own_subscriptions(
    base_url: str, issue_key: Callable[[str], IssuedMerchantKey], sync_redis: redis.Redis, redis_prefix: str
) -> None:
    store = SubscriptionStore(sync_redis, redis_prefix)
    theirs = new_subscription(scope="merchant", target=OTHER_MERCHANT, channel="webhook", address=HOOK + "/brasserie")
    recipient = new_subscription(scope="tracking_number", target="LP00123456789CN", channel="email", address="r@x.be")
    store.add(theirs)
    store.add(recipient)  # made by operations with the CLI: no merchant key may touch it
    cli_made_own = new_subscription(scope="merchant", target=MERCHANT, channel="email", address="ops@gaufres.example")
    store.add(cli_made_own)

    with client_for(base_url, issue_key(MERCHANT).key) as api:
        mine = api.post(PREFIX, json={"webhook_url": HOOK}).json()["subscription_id"]
        listed = api.get(PREFIX)
        assert {s["subscription_id"] for s in listed.json()["subscriptions"]} == {mine, cli_made_own.subscription_id}
        assert OTHER_MERCHANT not in listed.text and "brasserie" not in listed.text and "r@x.be" not in listed.text

        unknown = api.get(f"{PREFIX}/0123456789abcdef")
        assert unknown.status_code == 404
        for foreign in (theirs.subscription_id, recipient.subscription_id):
            for answer in (api.get(f"{PREFIX}/{foreign}"), api.delete(f"{PREFIX}/{foreign}")):
                assert answer.status_code == 404
                # The same answer as for an id that does not exist, but for the id itself.
                assert answer.json() == json.loads(unknown.text.replace("0123456789abcdef", foreign))

        forbidden = api.post(PREFIX, json={"merchant": OTHER_MERCHANT, "webhook_url": HOOK})
        assert forbidden.status_code == 403 and forbidden.json()["error"] == "forbidden_merchant"

    assert store.get(theirs.subscription_id) == theirs and store.get(recipient.subscription_id) == recipient
    assert [s.subscription_id for s in store.of("merchant", OTHER_MERCHANT)] == [theirs.subscription_id]
    with client_for(base_url, issue_key(OTHER_MERCHANT).key) as other:
        seen = other.get(PREFIX).json()["subscriptions"]
        assert [s["subscription_id"] for s in seen] == [theirs.subscription_id]
        assert other.get(f"{PREFIX}/{mine}").status_code == 404


def test_a_merchant_has_a_bounded_number_of_subscriptions(
    base_url: str, issue_key: Callable[[str], IssuedMerchantKey], sync_redis: redis.Redis, redis_prefix: str
) -> None:
    store = SubscriptionStore(sync_redis, redis_prefix)
    for index in range(MAX_SUBSCRIPTIONS_PER_MERCHANT):
        store.add(new_subscription(scope="merchant", target=MERCHANT, channel="webhook", address=f"{HOOK}/{index}"))
    with client_for(base_url, issue_key(MERCHANT).key) as api:
        full = api.post(PREFIX, json={"webhook_url": HOOK})
        assert full.status_code == 409 and full.json()["error"] == "too_many_subscriptions"
        assert store.count_of("merchant", MERCHANT) == MAX_SUBSCRIPTIONS_PER_MERCHANT
        assert api.delete(f"{PREFIX}/{store.of('merchant', MERCHANT)[0].subscription_id}").status_code == 204
        assert api.post(PREFIX, json={"webhook_url": HOOK}).status_code == 201


def test_redis_down_is_a_503(tracking_server: Callable[[ConsumerSettings], str]) -> None:
    nothing_listens = f"redis://127.0.0.1:{free_port()}/0"
    with client_for(
        tracking_server(ConsumerSettings(redis_url=nothing_listens)), "pmk_" + "0" * 16 + "_" + "x" * 43
    ) as api:
        answer = api.get(PREFIX)
    assert answer.status_code == 503 and answer.json()["error"] == "redis_unavailable"
    assert answer.headers["retry-after"] == "5"


def test_a_subscription_created_over_http_is_used_by_the_notifier(
    base_url: str,
    issue_key: Callable[[str], IssuedMerchantKey],
    settings_factory: Callable[..., NotifierSettings],
    webhook_receiver: WebhookReceiver,
    bootstrap_servers: str,
    topics: TopicNames,
) -> None:
    url = webhook_receiver.url("/from-api", "unknown-until-created")
    with client_for(base_url, issue_key(MERCHANT).key) as api:
        created = api.post(PREFIX, json={"webhook_url": url, "statuses": ["Delivered"]})
    assert created.status_code == 201, created.text
    webhook_receiver.secrets["/from-api"] = created.json()["secret"]  # the receiver verifies with it
    publish_updates(
        bootstrap_servers,
        topics.status_updates,
        [
            status_update("LP-API-1", 1, "InTransit", merchant=MERCHANT),  # a status not subscribed to
            status_update("LP-API-2", 1, "Delivered", merchant=OTHER_MERCHANT),  # another merchant
            status_update("LP-API-1", 2, "Delivered", merchant=MERCHANT),
        ],
    )
    settings = settings_factory(notifier_session_timeout_ms=6000)
    stop, summaries = threading.Event(), []
    thread = threading.Thread(target=lambda: summaries.append(run_notifier(settings, stop, poll_interval_s=0.05)))
    thread.start()
    try:
        wait_for(lambda: len(webhook_receiver.delivered("/from-api")) == 1, timeout=40, what="the webhook")
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not thread.is_alive(), "the notifier did not stop"
    (delivery,) = webhook_receiver.attempts("/from-api")
    assert delivery.verified, "the signature must verify with the secret the API returned"
    assert delivery.body["subscription_id"] == created.json()["subscription_id"]
    assert delivery.body["update_id"] == "LP-API-1-2" and delivery.body["merchant"] == MERCHANT
    summary: NotifierSummary = summaries[0]
    assert summary.consumer.updates == 3 and summary.consumer.enqueued == 1


def test_the_documented_subscription_endpoints() -> None:
    spec = create_app(ConsumerSettings()).openapi()
    assert spec["components"]["securitySchemes"]["merchantApiKey"]["scheme"] == "bearer"
    operations = {(path, method): spec["paths"][path][method] for path in (PREFIX, PREFIX + "/{subscription_id}")
                  for method in spec["paths"][path]}  # fmt: skip
    assert set(operations) == {
        (PREFIX, "post"),
        (PREFIX, "get"),
        (PREFIX + "/{subscription_id}", "get"),
        (PREFIX + "/{subscription_id}", "delete"),
    }
    for operation in operations.values():
        assert operation["security"] == [{"merchantApiKey": []}]
        assert {"401", "503"} <= set(operation["responses"])
    assert {"201", "403", "409", "422"} <= set(operations[(PREFIX, "post")]["responses"])
    assert "secret" not in spec["components"]["schemas"]["SubscriptionView"]["properties"]
    assert "ErrorBody" in spec["components"]["schemas"]  # the tracking API's own error body keeps its name


schema = schemathesis.openapi.from_dict(create_app(ConsumerSettings()).openapi()).include(path_regex=f"^{PREFIX}")


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_server_error_and_only_documented_answers(
    case: schemathesis.Case,
    tracking_server: Callable[[ConsumerSettings], str],
    issue_key: Callable[[str], IssuedMerchantKey],
    redis_url: str,
    redis_prefix: str,
    request: pytest.FixtureRequest,
) -> None:
    # One server and key per operation (this test runs once per operation, with many examples).
    node: Any = request.node
    if not hasattr(node, "_subscriptions_api"):
        url = tracking_server(ConsumerSettings(redis_url=redis_url, redis_prefix=redis_prefix))
        node._subscriptions_api = (url, issue_key(MERCHANT))
    url, key = node._subscriptions_api
    case.call_and_validate(
        base_url=url,
        headers={"Authorization": f"Bearer {key.key}"},
        checks=[not_a_server_error, status_code_conformance, response_schema_conformance],
    )
