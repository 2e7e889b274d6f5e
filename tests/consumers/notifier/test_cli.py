"""``subscriptions add|list|remove|test`` against real Redis, a real webhook receiver and aiosmtpd."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from consumers.notifier.cli import app

pytestmark = pytest.mark.integration


def _invoke(args: list[str], redis_url: str, redis_prefix: str) -> object:
    env = {
        "PARCELSTREAM_REDIS_URL": redis_url,
        "PARCELSTREAM_REDIS_PREFIX": redis_prefix,
        "COLUMNS": "200",
        "PARCELSTREAM_NOTIFIER_EGRESS_ALLOW": "127.0.0.1/32",  # the receivers listen on loopback
    }
    return CliRunner().invoke(app, args, env=env)


def test_add_list_test_and_remove_a_webhook_subscription(redis_url, redis_prefix, webhook_receiver) -> None:
    url = webhook_receiver.url("/cli", "cli-secret")
    added = _invoke(["subscriptions", "add", "--merchant", "shop-9", "--webhook", url, "--secret", "cli-secret",
                     "--status", "Delivered"], redis_url, redis_prefix)  # fmt: skip
    assert added.exit_code == 0, added.output
    subscription_id = added.stdout.strip()

    listed = _invoke(["subscriptions", "list", "--merchant", "shop-9"], redis_url, redis_prefix)
    assert subscription_id in listed.stdout and "Delivered" in listed.stdout
    assert "cli-secret" not in listed.output and "/cli" not in listed.stdout  # secret and path never shown

    tested = _invoke(["subscriptions", "test", subscription_id], redis_url, redis_prefix)
    assert tested.exit_code == 0, tested.output
    (delivery,) = webhook_receiver.delivered("/cli")
    assert delivery.verified and delivery.body["merchant"] == "shop-9" and delivery.body["status"] == "Delivered"

    removed = _invoke(["subscriptions", "remove", subscription_id], redis_url, redis_prefix)
    assert removed.exit_code == 0
    assert subscription_id not in _invoke(["subscriptions", "list"], redis_url, redis_prefix).stdout
    again = _invoke(["subscriptions", "remove", subscription_id], redis_url, redis_prefix)
    assert again.exit_code == 1 and f"no subscription {subscription_id}" in again.output


def test_test_delivery_by_email_and_failures_in_one_line(
    redis_url, redis_prefix, smtp_server, webhook_receiver
) -> None:
    port, mailbox = smtp_server
    added = _invoke(["subscriptions", "add", "--tracking-number", "LP-CLI", "--email", "jan@example.nl", "--language",
                     "nl"], redis_url, redis_prefix)  # fmt: skip
    assert added.exit_code == 0, added.output
    assert "jan@example.nl" not in added.output
    tested = _invoke(["subscriptions", "test", added.stdout.strip(), "--smtp-port", str(port)], redis_url, redis_prefix)
    assert tested.exit_code == 0, tested.output
    (message,) = mailbox.messages
    assert message["Subject"] == "Pakket LP-CLI: Onderweg"

    broken = webhook_receiver.url("/broken", "s", script=[500])
    added = _invoke(["subscriptions", "add", "--merchant", "m", "--webhook", broken], redis_url, redis_prefix)
    failed = _invoke(["subscriptions", "test", added.stdout.strip()], redis_url, redis_prefix)
    assert failed.exit_code == 1 and "failed: HTTP 500" in failed.output and "Traceback" not in failed.output

    both = _invoke(["subscriptions", "add", "--merchant", "m", "--tracking-number", "t", "--email", "a@b.example"],
                   redis_url, redis_prefix)  # fmt: skip
    assert both.exit_code == 1 and "exactly one of --merchant and --tracking-number" in both.output
    bad_language = _invoke(["subscriptions", "add", "--merchant", "m", "--email", "a@b.example", "--language", "es"],
                           redis_url, redis_prefix)  # fmt: skip
    assert bad_language.exit_code == 1 and "language must be one of" in bad_language.output
