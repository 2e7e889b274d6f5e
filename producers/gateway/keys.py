"""Per-carrier API keys: ``psk_<key id>_<secret>``, shown once when created, stored hashed in Redis
(the scheme, hashing and constant-time check are ``schemas/api_keys.py``'s).

Redis holds, under ``<prefix>:gateway:key:<key id>``, the carrier code, the key's scope (scan
sources and scan codes) and the SHA-256 of the secret, never the key itself;
``<prefix>:gateway:keys`` lists the key ids. Revoking keeps the record (marked revoked) so
``keys list`` still shows it.

Scope: a key publishes only its sources and its codes (403 otherwise). Shipment facts (the code
``ORDER_CREATED`` and a scan's ``shipment``: merchant, destination postcode, service level) decide
whose webhooks get a parcel's updates and which postcode opens its tracking page, so only keys
granted ``ORDER_CREATED`` explicitly (the shipper's, merchant's or warehouse's) may send them. A key
created without ``--codes``, and every key stored before scopes existed (no ``codes`` field), may
publish every other code of its sources but no shipment facts.
"""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass
from typing import Final

from redis.asyncio import Redis

from producers.formats.native import SOURCES
from schemas.api_keys import CARRIER_KEYS, secret_hash, secret_matches
from schemas.scan_codes import SCAN_CODES

CARRIER_PATTERN: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
#: The code that carries shipment facts; granted only explicitly (``--codes ORDER_CREATED,...``).
SHIPMENT_FACTS_CODE: Final = "ORDER_CREATED"
#: Codes of a key created without ``--codes`` or stored before scopes existed.
DEFAULT_CODES: Final = tuple(code for code in SCAN_CODES if code != SHIPMENT_FACTS_CODE)


class ApiKeyError(ValueError):
    """A key request that cannot be fulfilled (one line for the user)."""


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    carrier: str
    sources: tuple[str, ...]
    created_ms: int
    revoked_ms: int | None = None
    codes: tuple[str, ...] = DEFAULT_CODES

    @property
    def active(self) -> bool:
        return self.revoked_ms is None

    @property
    def shipment_facts(self) -> bool:
        """Whether the key may send ORDER_CREATED and a scan's shipment facts."""
        return SHIPMENT_FACTS_CODE in self.codes

    @property
    def codes_shown(self) -> str:
        return "all but ORDER_CREATED" if self.codes == DEFAULT_CODES else ", ".join(self.codes)


@dataclass(frozen=True)
class IssuedKey:
    key: str  # the only time the plain key exists: give it to the carrier, it is not stored
    api_key: ApiKey


def check_codes(codes: list[str]) -> tuple[str, ...]:
    """The de-duplicated codes of ``--codes`` (each may be comma-separated); none given: DEFAULT_CODES."""
    wanted = [code.strip() for item in codes for code in item.split(",") if code.strip()]
    if not wanted:
        return DEFAULT_CODES
    unknown = [code for code in wanted if code not in SCAN_CODES]
    if unknown:
        raise ApiKeyError(f"unknown scan code(s) {', '.join(unknown)}; known: schemas/scan_codes.py")
    return tuple(dict.fromkeys(wanted))


def check_key_request(carrier: str, sources: list[str]) -> tuple[str, ...]:
    """The de-duplicated sources of a valid request; raises ApiKeyError naming what is wrong."""
    if not CARRIER_PATTERN.fullmatch(carrier):
        raise ApiKeyError(f"carrier {carrier!r} must be 1-32 letters, digits, '.', '_' or '-' (e.g. CK)")
    if not sources:
        raise ApiKeyError(f"give at least one --source (one of {', '.join(SOURCES)})")
    unknown = [source for source in sources if source not in SOURCES]
    if unknown:
        raise ApiKeyError(f"unknown source(s) {', '.join(unknown)}; known: {', '.join(SOURCES)}")
    return tuple(dict.fromkeys(sources))


class KeyStore:
    """API keys in Redis (a client created with ``decode_responses=True``)."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    def _record_key(self, key_id: str) -> str:
        return f"{self.prefix}:gateway:key:{key_id}"

    @property
    def _index_key(self) -> str:
        return f"{self.prefix}:gateway:keys"

    async def create(self, carrier: str, sources: list[str], codes: list[str] | None = None) -> IssuedKey:
        """A new key for ``carrier`` and its scope (``codes`` None or empty: DEFAULT_CODES)."""
        allowed = check_key_request(carrier, sources)
        allowed_codes = check_codes(codes or [])
        key_id, secret, key = CARRIER_KEYS.generate()
        created_ms = time.time_ns() // 1_000_000
        fields = {
            "carrier": carrier,
            "sources": ",".join(allowed),
            # Empty: the default scope, which follows the code list as it grows.
            "codes": "" if allowed_codes == DEFAULT_CODES else ",".join(allowed_codes),
            "secret_sha256": secret_hash(secret),
            "created_ms": str(created_ms),
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._record_key(key_id), mapping=fields)
            pipe.sadd(self._index_key, key_id)
            await pipe.execute()
        return IssuedKey(key, ApiKey(key_id, carrier, allowed, created_ms, codes=allowed_codes))

    async def get(self, key_id: str) -> tuple[ApiKey, str] | None:
        """The key's record and its secret hash, or None when the id is unknown."""
        fields = await self.redis.hgetall(self._record_key(key_id))
        if not fields:
            return None
        revoked = fields.get("revoked_ms")
        api_key = ApiKey(
            key_id=key_id,
            carrier=fields["carrier"],
            sources=tuple(source for source in fields.get("sources", "").split(",") if source),
            created_ms=int(fields["created_ms"]),
            revoked_ms=int(revoked) if revoked else None,
            # No codes field (a key stored before scopes) or an empty one: the default scope.
            codes=tuple(code for code in fields.get("codes", "").split(",") if code) or DEFAULT_CODES,
        )
        return api_key, fields["secret_sha256"]

    async def list(self) -> list[ApiKey]:
        key_ids = sorted(await self.redis.smembers(self._index_key))
        keys = [found[0] for key_id in key_ids if (found := await self.get(key_id)) is not None]
        return sorted(keys, key=lambda key: (key.carrier, key.created_ms))

    async def revoke(self, key_id: str) -> ApiKey:
        """Mark the key revoked (from now on it gets 401); raises ApiKeyError for an unknown id."""
        found = await self.get(key_id)
        if found is None:
            raise ApiKeyError(f"no API key with id {key_id!r} (see `keys list`)")
        api_key, _ = found
        if api_key.revoked_ms is not None:
            return api_key
        revoked_ms = time.time_ns() // 1_000_000
        await self.redis.hset(self._record_key(key_id), "revoked_ms", str(revoked_ms))
        return dataclasses.replace(api_key, revoked_ms=revoked_ms)

    async def authenticate(self, presented: str) -> ApiKey | None:
        """The active key whose secret matches ``presented``, else None (unknown, wrong or revoked)."""
        parts = CARRIER_KEYS.split(presented)
        key_id, secret = parts if parts is not None else ("", presented)
        found = await self.get(key_id) if parts is not None else None
        matches = secret_matches(secret, found[1] if found is not None else None)
        if found is None or not matches or not found[0].active:
            return None
        return found[0]
