"""Webhook egress (issue 14): the notifier refuses non-public addresses, resolved and pinned at
connect time, and plain http://, unless the operator allow-lists a local receiver's network."""

from __future__ import annotations

import ipaddress

import pytest

from consumers.notifier.egress import EgressPolicy, parse_networks, refusal
from consumers.notifier.model import new_subscription
from tests.stages import wait_for

from .conftest import status_update

REFUSED = {
    "127.0.0.1": "loopback",
    "::1": "loopback",
    "169.254.169.254": "link-local",  # cloud metadata service
    "fe80::1": "link-local",
    "10.1.2.3": "private",
    "172.16.0.1": "private",
    "192.168.1.1": "private",
    "100.64.0.1": "shared (CGNAT)",
    "fc00::1": "unique-local",
    "fd12:3456::1": "unique-local",
    "::ffff:127.0.0.1": "IPv4-mapped",
    "::ffff:8.8.8.8": "IPv4-mapped",
    "64:ff9b::7f00:1": "NAT64",
    "64:ff9b:1::a00:1": "NAT64",
    "0.0.0.0": "unspecified",
    "224.0.0.1": "multicast",
    "2002:7f00:1::1": "6to4",
}


@pytest.mark.parametrize(("address", "kind"), REFUSED.items())
def test_ssrf_non_public_addresses_are_refused(address: str, kind: str) -> None:
    reason = refusal(ipaddress.ip_address(address))
    assert reason is not None and kind in reason


@pytest.mark.parametrize("address", ["8.8.8.8", "193.190.1.1", "2001:4860:4860::8888"])
def test_ssrf_public_addresses_pass(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


def test_ssrf_https_by_default_and_the_allow_list_is_explicit() -> None:
    public = [ipaddress.ip_address("8.8.8.8")]
    loopback = [ipaddress.ip_address("127.0.0.1")]
    default = EgressPolicy()
    assert default.check("https", public) is None
    assert "https://" in (default.check("http", public) or "")
    assert "loopback" in (default.check("https", loopback) or "")
    # One refused address among several refuses the host: the connection could land on it.
    assert "loopback" in (default.check("https", public + loopback) or "")
    local = EgressPolicy(parse_networks("127.0.0.1/32, ::1"))
    assert local.check("http", loopback) is None
    assert local.check("https", [ipaddress.ip_address("127.0.0.2")]) is not None
    with pytest.raises(ValueError, match="'localhost' is not an IP address"):
        parse_networks("localhost")


@pytest.mark.integration
def test_egress_a_receiver_on_loopback_is_refused_by_default(
    settings_factory, delivery_stack_factory, webhook_receiver, readers, topics
) -> None:
    stack = delivery_stack_factory(settings_factory(notifier_egress_allow=""))
    port_url = webhook_receiver.url("/internal", "s")
    for target, address in (("shop-ip", port_url), ("shop-name", port_url.replace("127.0.0.1", "localhost"))):
        stack.subscriptions.add(
            new_subscription(scope="merchant", target=target, channel="webhook", address=address, secret="s")
        )
        stack.enqueue_update(status_update(f"LP-{target.upper()}", 1, "Delivered", merchant=target))

    reader = readers(topics.dead_letters)
    wait_for(lambda: reader.poll() >= 2, 20, "two dead letters")
    letters = reader.values()
    assert {d["reason_code"] for d in letters} == {"delivery_rejected"}
    assert all("egress refused" in d["reason"] for d in letters)
    assert all("127.0.0.1" not in d["reason"] and "localhost" not in d["reason"] for d in letters)
    assert webhook_receiver.attempts("/internal") == []  # not one byte reached it
    assert stack.stats.retried == 0  # refused at once: retrying cannot change the address


@pytest.mark.integration
def test_egress_a_receiver_on_loopback_is_reached_when_allow_listed(
    settings_factory, delivery_stack_factory, webhook_receiver
) -> None:
    stack = delivery_stack_factory(settings_factory(notifier_egress_allow="127.0.0.1/32,::1/128"))
    url = webhook_receiver.url("/local", "s").replace("127.0.0.1", "localhost")
    stack.subscriptions.add(
        new_subscription(scope="merchant", target="shop", channel="webhook", address=url, secret="s")
    )
    stack.enqueue_update(status_update("LP-LOCAL", 1, "Delivered", merchant="shop"))

    wait_for(lambda: len(webhook_receiver.delivered("/local")) == 1, 20, "the delivery")
    (delivery,) = webhook_receiver.delivered("/local")
    # Connected to an address it checked (the receiver listens on 127.0.0.1), with the URL's Host.
    assert delivery.host.startswith("localhost:")
    assert delivery.verified
