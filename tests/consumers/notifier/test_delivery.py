"""The delivery loop against real local endpoints, real Redis and the real broker (dead letters)."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from typing import Any

import pytest

from consumers.notifier.model import new_subscription
from tests.stages import wait_for

from .conftest import HANG, status_update

pytestmark = pytest.mark.integration


def _webhook(stack: Any, receiver: Any, path: str, script: list[int] | None = None, **kwargs: Any) -> None:
    subscription = new_subscription(
        scope=kwargs.pop("scope", "merchant"),
        target=kwargs.pop("target", "shop-1"),
        channel="webhook",
        address=receiver.url(path, f"secret-{path}", script),
        secret=f"secret-{path}",
        **kwargs,
    )
    stack.subscriptions.add(subscription)


def test_retries_with_backoff_then_delivers_once(settings_factory, delivery_stack_factory, webhook_receiver) -> None:
    stack = delivery_stack_factory(settings_factory(notifier_max_retries=4, notifier_retry_base_delay_s=0.1))
    _webhook(stack, webhook_receiver, "/flaky", script=[500, 429, 503])
    assert stack.enqueue_update(status_update("LP1", 1, "InTransit", merchant="shop-1")) == 1

    wait_for(lambda: len(webhook_receiver.delivered("/flaky")) == 1, 20, "the delivery after three failures")
    attempts = webhook_receiver.attempts("/flaky")
    assert [a.status for a in attempts] == [500, 429, 503, 200]
    gaps = [later.received - earlier.received for earlier, later in itertools.pairwise(attempts)]
    # 2^n × base: each wait at least as long as its backoff step.
    assert all(gap >= 0.1 * 2**n for n, gap in enumerate(gaps)), gaps
    assert len({a.idempotency_key for a in attempts}) == 1
    assert all(a.verified for a in attempts)
    wait_for(lambda: stack.stats.sent == 1, 20, "the job to be marked delivered")
    assert stack.pending() == 0
    assert stack.stats.retried == 3


def test_dead_letters_after_last_retry_and_without_retry_on_4xx(
    settings_factory, delivery_stack_factory, webhook_receiver, readers, topics
) -> None:
    stack = delivery_stack_factory(settings_factory(notifier_max_retries=2))
    _webhook(stack, webhook_receiver, "/down", script=[503] * 10, target="shop-down")
    _webhook(stack, webhook_receiver, "/gone", script=[410] * 10, target="shop-gone")
    stack.enqueue_update(status_update("LP-DOWN", 1, "Delivered", merchant="shop-down"))
    stack.enqueue_update(status_update("LP-GONE", 1, "Delivered", merchant="shop-gone"))

    reader = readers(topics.dead_letters)
    wait_for(lambda: reader.poll() >= 2, 20, "two dead letters")
    dead_letters = reader.values()
    by_tracking = {json.loads(d["payload"])["tracking_number"]: d for d in dead_letters}
    assert set(by_tracking) == {"LP-DOWN", "LP-GONE"}
    down, gone = by_tracking["LP-DOWN"], by_tracking["LP-GONE"]
    assert down["stage"] == "notifier" and down["reason_code"] == "retries_exhausted"
    assert "HTTP 503" in down["reason"] and "3 attempt" in down["reason"]
    assert gone["reason_code"] == "delivery_rejected" and "HTTP 410" in gone["reason"]
    assert json.loads(down["payload"])["update_id"] == "LP-DOWN-1"
    assert len(webhook_receiver.attempts("/down")) == 3  # first attempt + 2 retries
    assert len(webhook_receiver.attempts("/gone")) == 1  # 4xx: no retry
    wait_for(lambda: stack.pending() == 0, 20, "dead-lettered jobs to be done")


def test_dead_endpoint_does_not_delay_a_healthy_one(settings_factory, delivery_stack_factory, webhook_receiver) -> None:
    stack = delivery_stack_factory(
        settings_factory(notifier_max_retries=50, notifier_retry_base_delay_s=0.2, notifier_request_timeout_s=0.5)
    )
    _webhook(stack, webhook_receiver, "/hangs", script=[HANG] * 200)
    refused = new_subscription(
        scope="merchant", target="shop-1", channel="webhook", address="http://127.0.0.1:9/refused", secret="s"
    )
    stack.subscriptions.add(refused)
    _webhook(stack, webhook_receiver, "/healthy")
    parcels = [f"LP-{i}" for i in range(8)]
    for sequence in (1, 2):
        for parcel in parcels:
            stack.enqueue_update(status_update(parcel, sequence, "InTransit", merchant="shop-1"))

    wait_for(lambda: stack.stats.sent == 16, 20, "every healthy delivery")
    assert len(webhook_receiver.delivered("/healthy")) == 16
    # The dead endpoints are still retrying their first jobs: nothing of theirs is done.
    assert stack.pending() == 32
    assert webhook_receiver.delivered("/hangs") == []
    assert stack.stats.dead_lettered == 0


def test_each_parcels_updates_arrive_in_sequence_order(
    settings_factory, delivery_stack_factory, webhook_receiver
) -> None:
    stack = delivery_stack_factory(settings_factory(notifier_endpoint_concurrency=4, notifier_max_retries=5))
    # Failures in the middle: a retrying update must hold back the parcel's later ones.
    _webhook(stack, webhook_receiver, "/ordered", script=[200, 500, 200, 500, 500])
    statuses = ["InfoReceived", "InTransit", "CustomsHold", "InTransit", "OutForDelivery", "Delivered"]
    for sequence, status in enumerate(statuses, start=1):
        for parcel in ("LP-A", "LP-B", "LP-C"):
            stack.enqueue_update(status_update(parcel, sequence, status, merchant="shop-1"))

    wait_for(lambda: len(webhook_receiver.delivered("/ordered")) == 18, 20, "all ordered deliveries")
    sequences: dict[str, list[int]] = defaultdict(list)
    for delivery in webhook_receiver.delivered("/ordered"):
        sequences[delivery.body["tracking_number"]].append(delivery.body["sequence"])
    assert dict(sequences) == {parcel: [1, 2, 3, 4, 5, 6] for parcel in ("LP-A", "LP-B", "LP-C")}


def test_email_arrives_in_the_subscribers_language(settings_factory, delivery_stack_factory, smtp_server) -> None:
    port, mailbox = smtp_server
    stack = delivery_stack_factory(settings_factory(smtp_port=port))
    for language, address in (("fr", "client@example.fr"), ("zh", "kehu@example.cn")):
        stack.subscriptions.add(
            new_subscription(
                scope="tracking_number", target="LP-MAIL", channel="email", address=address, language=language
            )
        )
    stack.enqueue_update(status_update("LP-MAIL", 3, "OutForDelivery"))

    wait_for(lambda: len(mailbox.messages) == 2, 20, "two e-mails")
    by_recipient = {message["To"]: message for message in mailbox.messages}
    french, chinese = by_recipient["client@example.fr"], by_recipient["kehu@example.cn"]
    assert french["Subject"] == "Colis LP-MAIL : En cours de livraison"
    assert "Votre colis LP-MAIL : En cours de livraison." in french.get_content()
    assert "Liège Airport" in french.get_content()
    assert chinese["Subject"] == "包裹 LP-MAIL：派送中"
    assert chinese["Content-Language"] == "zh"
