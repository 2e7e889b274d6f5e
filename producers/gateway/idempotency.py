"""``Idempotency-Key`` handling: a retried batch gets the first successful response again and is
not published twice.

The first request with a key claims it (``SET NX``, state ``pending``, short TTL) while it is
processed; a concurrent request with the same key then gets 409. A success replaces the claim with
the response (TTL ``ttl_s``, 24 h by default); any failure releases the claim so a retry can succeed
later. Keys are per carrier, and bound to the request body's SHA-256: the same key with another
body is a client error (422), not a replay.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Final, Literal

from redis.asyncio import Redis

MAX_KEY_LENGTH: Final = 255


@dataclass(frozen=True)
class Claim:
    """Outcome of ``begin``: ``proceed`` (the key is ours now), ``replay`` (stored response),
    ``in_flight`` (another request holds it) or ``mismatch`` (used before with another body)."""

    outcome: Literal["proceed", "replay", "in_flight", "mismatch"]
    status_code: int = 0
    body: Any = None


def valid_idempotency_key(value: str) -> bool:
    """1-255 visible ASCII characters (what clients put in UUIDs or their own batch ids)."""
    return 0 < len(value) <= MAX_KEY_LENGTH and all(33 <= ord(char) <= 126 for char in value)


class IdempotencyStore:
    def __init__(self, redis: Redis, prefix: str, ttl_s: int, claim_ttl_s: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl_s = ttl_s
        self.claim_ttl_s = claim_ttl_s  # outlives any request, so a crashed process frees the key

    def _key(self, carrier: str, idempotency_key: str) -> str:
        digest = hashlib.sha256(idempotency_key.encode()).hexdigest()
        return f"{self.prefix}:gateway:idempotency:{carrier}:{digest}"

    async def begin(self, carrier: str, idempotency_key: str, body_sha256: str) -> Claim:
        key = self._key(carrier, idempotency_key)
        pending = json.dumps({"state": "pending", "body_sha256": body_sha256})
        if await self.redis.set(key, pending, nx=True, ex=self.claim_ttl_s):
            return Claim("proceed")
        stored = await self.redis.get(key)
        if stored is None:  # expired between the two calls: treat as still in flight, the client retries
            return Claim("in_flight")
        entry = json.loads(stored)
        if entry["body_sha256"] != body_sha256:
            return Claim("mismatch")
        if entry["state"] == "pending":
            return Claim("in_flight")
        return Claim("replay", entry["status_code"], entry["body"])

    async def complete(self, carrier: str, idempotency_key: str, body_sha256: str, status_code: int, body: Any) -> None:
        entry = {"state": "done", "body_sha256": body_sha256, "status_code": status_code, "body": body}
        await self.redis.set(self._key(carrier, idempotency_key), json.dumps(entry), ex=self.ttl_s)

    async def release(self, carrier: str, idempotency_key: str) -> None:
        await self.redis.delete(self._key(carrier, idempotency_key))
