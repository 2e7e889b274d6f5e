"""API keys: their form, hashed storage in Redis, and the ``keys`` commands."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable

import pytest
import redis
from redis.asyncio import Redis

from producers.gateway.keys import ApiKeyError, IssuedKey, KeyStore, check_key_request
from schemas.api_keys import CARRIER_KEYS


def test_key_requests_name_what_is_wrong() -> None:
    assert check_key_request("CK", ["flight", "warehouse", "flight"]) == ("flight", "warehouse")
    with pytest.raises(ApiKeyError, match="at least one --source"):
        check_key_request("CK", [])
    with pytest.raises(ApiKeyError, match="unknown source"):
        check_key_request("CK", ["air"])
    with pytest.raises(ApiKeyError, match="carrier"):
        check_key_request("C K", ["flight"])
    with pytest.raises(ApiKeyError, match="carrier"):
        check_key_request("CK\n", ["flight"])  # "$" alone would let a trailing newline through


@pytest.mark.integration
def test_keys_are_stored_hashed(create_key: Callable[..., IssuedKey], redis_url: str, redis_prefix: str) -> None:
    issued = create_key("CK", ("flight",))
    _key_id, secret = CARRIER_KEYS.split(issued.key) or ("", "")
    client = redis.Redis.from_url(redis_url)
    try:
        stored = b""
        for name in client.scan_iter(match=f"{redis_prefix}*"):
            kind = client.type(name)
            if kind == b"hash":
                stored += b" ".join(part for item in client.hgetall(name).items() for part in item)
            elif kind == b"set":
                stored += b" ".join(client.smembers(name))
            else:
                stored += client.get(name) or b""
    finally:
        client.close()
    assert hashlib.sha256(secret.encode()).hexdigest().encode() in stored
    assert issued.key.encode() not in stored
    assert secret.encode() not in stored

    async def authenticate(presented: str) -> object:
        store_client = Redis.from_url(redis_url, decode_responses=True)
        try:
            return await KeyStore(store_client, redis_prefix).authenticate(presented)
        finally:
            await store_client.aclose()

    assert asyncio.run(authenticate(issued.key)) == issued.api_key
    assert asyncio.run(authenticate(issued.key + "x")) is None
