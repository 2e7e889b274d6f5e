from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from consumers.journey import LANGUAGES, STATUS_NAMES
from consumers.notifier.messages import email_text, webhook_payload
from consumers.notifier.model import (
    NotificationJob,
    Subscription,
    SubscriptionError,
    idempotency_key,
    jobs_for_update,
    mask_address,
    new_subscription,
)

from .conftest import status_update


def _webhook(target: str = "shop-1", scope: str = "merchant", **kwargs: object) -> Subscription:
    return new_subscription(scope=scope, target=target, channel="webhook", address="https://hooks.example/x", **kwargs)  # type: ignore[arg-type]


def test_jobs_go_to_matching_merchant_and_parcel_subscriptions_only() -> None:
    merchant = _webhook()
    parcel = new_subscription(scope="tracking_number", target="LP1", channel="email", address="a@b.example")
    only_delivered = _webhook(statuses=["Delivered"])
    other_merchant = _webhook(target="shop-2")
    update = status_update("LP1", 4, "InTransit", merchant="shop-1")

    jobs = jobs_for_update(update, [merchant, parcel, only_delivered, other_merchant], now_ms=5)

    assert {job.subscription_id for job in jobs} == {merchant.subscription_id, parcel.subscription_id}
    assert all(job.sequence == 4 and job.next_attempt_ms == 5 and job.attempts == 0 for job in jobs)


def test_an_update_without_merchant_matches_no_merchant_subscription() -> None:
    assert jobs_for_update(status_update("LP1", 1, "InTransit"), [_webhook()], now_ms=0) == []


def test_idempotency_key_is_stable_per_subscription_and_update() -> None:
    subscription = _webhook()
    update = status_update("LP1", 1, "InTransit", merchant="shop-1")
    (first,) = jobs_for_update(update, [subscription], now_ms=1)
    (again,) = jobs_for_update(dict(update, event_id="replayed"), [subscription], now_ms=99)
    assert first.job_id == again.job_id == idempotency_key(subscription.subscription_id, "LP1-1")
    assert idempotency_key("other", "LP1-1") != first.job_id
    assert first.payload["idempotency_key"] == first.job_id


def test_job_and_subscription_survive_json() -> None:
    subscription = _webhook(statuses=["Delivered", "Exception"], language="nl")
    assert Subscription.from_json(subscription.to_json()) == subscription
    (job,) = jobs_for_update(status_update("LP1", 1, "Delivered", merchant="shop-1"), [subscription], now_ms=1)
    assert NotificationJob.from_json(job.to_json()) == job
    assert json.loads(job.body()) == job.payload


@pytest.mark.parametrize(
    ("kwargs", "message", "field"),
    [
        ({"scope": "country"}, "scope", "scope"),
        ({"target": " "}, "needs a merchant", "target"),
        ({"address": "ftp://x"}, "http", "address"),
        ({"address": "https://h/a b"}, "http", "address"),
        ({"address": "https://h/\r\nX-Injected: 1"}, "http", "address"),
        ({"channel": "email", "address": "not-an-address"}, "e-mail", "address"),
        ({"language": "es"}, "language", "language"),
        ({"statuses": ["Lost"]}, "unknown status Lost", "statuses"),
    ],
)
def test_invalid_subscriptions_are_refused_with_the_reason(kwargs: dict[str, object], message: str, field: str) -> None:
    values: dict[str, object] = {"scope": "merchant", "target": "shop", "channel": "webhook", "address": "http://h/x"}
    values.update(kwargs)
    with pytest.raises(SubscriptionError, match=message) as refused:
        new_subscription(**values)  # type: ignore[arg-type]
    assert refused.value.field == field  # the HTTP API reports it as the field path


def test_webhooks_get_a_random_secret_and_descriptions_hide_addresses() -> None:
    first, second = _webhook(), _webhook()
    assert first.secret and first.secret != second.secret
    email = new_subscription(scope="tracking_number", target="LP1", channel="email", address="jane@mail.example")
    assert "jane" not in email.describe() and "jane" not in mask_address("email", email.address)
    assert "/x" not in mask_address("webhook", first.address)


def test_every_language_has_an_email_naming_the_status_from_the_shared_catalog() -> None:
    payload = webhook_payload(status_update("LP1", 2, "CustomsHold"), "sub-1", "key-1")
    for language in LANGUAGES:
        subject, body = email_text(payload, language)
        assert STATUS_NAMES[language]["CustomsHold"] in subject and "LP1" in body


def test_payload_and_email_text() -> None:
    update = status_update("LP1", 2, "Delivered", merchant="shop-1")
    update["estimated_delivery"] = {
        "earliest_ms": 1_790_100_000_000,
        "latest_ms": 1_790_300_000_000,
        "promised_ms": None,
    }
    payload = webhook_payload(update, "sub-1", "key-1")
    assert payload["event_time"].endswith("+01:00")
    earliest, latest = (
        datetime.fromtimestamp(ms / 1000, UTC).date().isoformat() for ms in (1_790_100_000_000, 1_790_300_000_000)
    )
    assert payload["estimated_delivery"] == {"earliest": earliest, "latest": latest, "promised": None}
    assert payload["language"] == "en"
    assert payload["delivery"] == "Delivered on Mon, Sep 21, 2026 15:15 (UTC+1)"
    subject, body = email_text(payload, "nl")
    assert subject == "Pakket LP1: Bezorgd"
    assert "Bezorgd op ma 21 sep 2026 15:15 (UTC+1)" in body
    assert email_text(payload, "xx")[0] == "Parcel LP1: Delivered"


def test_webhooks_and_emails_say_what_happened_as_the_tracking_page_does() -> None:
    update = status_update("LP1", 3, "InTransit")
    update["sub_status"] = "arrived_at_destination"
    update["estimated_delivery"] = {"earliest_ms": 1_790_100_000_000, "latest_ms": 1_790_300_000_000}
    french = webhook_payload(update, "sub-1", "key-1", "fr")
    assert french["language"] == "fr"
    assert french["message"] == "Arrivé à Liège Airport (LGG), Belgique"
    assert french["delivery"].startswith("Livraison prévue ")
    subject, body = email_text(french, "de")
    assert subject == "Paket LP1: Unterwegs"
    assert body.startswith("Ihr Paket LP1: Angekommen in Liège Airport (LGG), Belgien.\n")
    assert "(UTC+1)" in body
    assert "Erwartet " in body
    held = status_update("LP1", 4, "CustomsHold")
    held["sub_status"] = "held_import"
    assert webhook_payload(held, "sub-1", "key-2", "zh")["message"] == "被比利时海关扣留"


def test_webhooks_and_emails_name_the_movement_when_the_notifier_knows_it() -> None:
    update = status_update("LP1", 2, "InTransit")
    update["sub_status"] = "departed_origin"
    update["movement"] = {"kind": "flight", "reference": "CK261"}
    payload = webhook_payload(update, "sub-1", "key-1")
    assert payload["movement"] == {"kind": "flight", "reference": "CK261"}
    assert payload["message"].endswith("on flight CK261")
    assert "CK261" in email_text(payload, "fr")[1]
    update["movement"] = None
    assert "CK261" not in webhook_payload(update, "sub-1", "key-1")["message"]
