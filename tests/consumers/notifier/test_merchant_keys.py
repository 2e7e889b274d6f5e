"""Merchant API keys: their form, hashed storage in real Redis, and the ``merchant-keys`` commands."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
import redis
from typer.testing import CliRunner

from consumers.notifier.cli import app
from consumers.notifier.merchant_keys import (
    MerchantKeyError,
    MerchantKeyStore,
    check_merchant,
)
from schemas.api_keys import MERCHANT_KEYS


def test_merchants_are_free_text_but_not_blank_control_or_huge() -> None:
    assert check_merchant("  Gaufres & Co ") == "Gaufres & Co"
    assert check_merchant("深圳明亮电子") == "深圳明亮电子"
    for bad, reason in (("  ", "empty"), ("shop\n1", "control"), ("x" * 201, "at most 200")):
        with pytest.raises(MerchantKeyError, match=reason):
            check_merchant(bad)


@pytest.fixture
def key_store(redis_url: str, redis_prefix: str) -> Iterator[MerchantKeyStore]:
    client = redis.Redis.from_url(redis_url)
    yield MerchantKeyStore(client, redis_prefix)
    client.close()


@pytest.mark.integration
def test_keys_are_stored_hashed_and_authenticate_until_revoked(key_store: MerchantKeyStore, redis_prefix: str) -> None:
    issued = key_store.create(" Gaufres & Co ", now_ms=10)
    assert issued.merchant_key.merchant == "Gaufres & Co"
    _key_id, secret = MERCHANT_KEYS.split(issued.key) or ("", "")
    client = key_store.client
    stored = b" ".join(
        part
        for name in client.scan_iter(match=f"{redis_prefix}*")
        for part in (
            [item for pair in client.hgetall(name).items() for item in pair]
            if client.type(name) == b"hash"
            else list(client.smembers(name))
        )
    )
    assert hashlib.sha256(secret.encode()).hexdigest().encode() in stored
    assert secret.encode() not in stored and issued.key.encode() not in stored

    assert key_store.authenticate(issued.key) == issued.merchant_key
    assert key_store.authenticate(issued.key[:-1] + ("A" if issued.key[-1] != "A" else "B")) is None
    assert key_store.authenticate("") is None
    other = key_store.create("Brasserie des Ardennes", now_ms=20)
    assert key_store.list() == [other.merchant_key, issued.merchant_key]  # by merchant

    revoked = key_store.revoke(issued.merchant_key.key_id, now_ms=30)
    assert revoked.revoked_ms == 30 and not revoked.active
    assert key_store.authenticate(issued.key) is None
    assert key_store.authenticate(other.key) == other.merchant_key
    assert key_store.revoke(issued.merchant_key.key_id, now_ms=40).revoked_ms == 30  # revoking twice keeps the time
    with pytest.raises(MerchantKeyError, match="no merchant API key"):
        key_store.revoke("0123456789abcdef", now_ms=50)


@pytest.mark.integration
def test_merchant_keys_commands(key_store: MerchantKeyStore, redis_url: str, redis_prefix: str) -> None:
    env = {"PARCELSTREAM_REDIS_URL": redis_url, "PARCELSTREAM_REDIS_PREFIX": redis_prefix, "COLUMNS": "200"}
    runner = CliRunner()
    created = runner.invoke(app, ["merchant-keys", "create", "--merchant", "Gaufres & Co"], env=env)
    assert created.exit_code == 0, created.output
    key = created.stdout.strip()
    authenticated = key_store.authenticate(key)
    assert authenticated is not None and authenticated.merchant == "Gaufres & Co"
    assert "not shown again" in created.stderr

    listed = runner.invoke(app, ["merchant-keys", "list"], env=env)
    assert listed.exit_code == 0
    assert authenticated.key_id in listed.stdout and "Gaufres & Co" in listed.stdout and "active" in listed.stdout
    assert key not in listed.output and key.rsplit("_", 1)[1] not in listed.output

    revoked = runner.invoke(app, ["merchant-keys", "revoke", authenticated.key_id], env=env)
    assert revoked.exit_code == 0, revoked.output
    assert key_store.authenticate(key) is None
    assert "revoked" in runner.invoke(app, ["merchant-keys", "list", "--merchant", "Gaufres & Co"], env=env).stdout

    unknown = runner.invoke(app, ["merchant-keys", "revoke", "0123456789abcdef"], env=env)
    assert unknown.exit_code == 1 and "no merchant API key" in unknown.output and "Traceback" not in unknown.output
    blank = runner.invoke(app, ["merchant-keys", "create", "--merchant", " "], env=env)
    assert blank.exit_code == 1 and "must not be empty" in blank.output
