"""Per-merchant API keys of the subscriptions API: ``pmk_<key id>_<secret>``, shown once when created,
stored hashed in Redis (the scheme the ingest gateway's carrier keys use: ``schemas/api_keys.py``).

Under ``<prefix>:notifier:merchant-key:<key id>`` Redis holds the merchant, the SHA-256 of the secret
(never the key), and when the key was created and revoked; ``<prefix>:notifier:merchant-keys`` lists
the key ids. Revoking keeps the record (``merchant-keys list`` shows it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import redis

from consumers.notifier.store import Keys
from schemas.api_keys import MERCHANT_KEYS, secret_hash, secret_matches

MAX_MERCHANT_LENGTH: Final = 200


class MerchantKeyError(ValueError):
    """A key request that cannot be fulfilled (one line for the user)."""


@dataclass(frozen=True)
class MerchantKey:
    key_id: str
    merchant: str
    created_ms: int
    revoked_ms: int | None = None

    @property
    def active(self) -> bool:
        return self.revoked_ms is None


@dataclass(frozen=True)
class IssuedMerchantKey:
    key: str  # the only time the plain key exists: give it to the merchant, it is not stored
    merchant_key: MerchantKey


def check_merchant(merchant: str) -> str:
    """The merchant id as subscriptions store it (stripped); raises MerchantKeyError naming what is wrong.

    Merchant ids are free text in the pipeline ("Gaufres & Co"), so only blanks, control characters
    and absurd lengths are refused; the id must equal the ``merchant`` of the parcels' status updates.
    """
    stripped = merchant.strip()
    if not stripped:
        raise MerchantKeyError("the merchant must not be empty")
    if len(stripped) > MAX_MERCHANT_LENGTH:
        raise MerchantKeyError(f"the merchant must be at most {MAX_MERCHANT_LENGTH} characters")
    if not stripped.isprintable():
        raise MerchantKeyError("the merchant must not contain control characters")
    return stripped


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class MerchantKeyStore:
    """Merchant API keys in Redis (a synchronous client, with or without ``decode_responses``)."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.keys = Keys(prefix)

    def create(self, merchant: str, now_ms: int) -> IssuedMerchantKey:
        checked = check_merchant(merchant)
        key_id, secret, key = MERCHANT_KEYS.generate()
        fields = {"merchant": checked, "secret_sha256": secret_hash(secret), "created_ms": str(now_ms)}
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.keys.merchant_key(key_id), mapping=fields)
        pipe.sadd(self.keys.merchant_keys(), key_id)
        pipe.execute()
        return IssuedMerchantKey(key, MerchantKey(key_id, checked, now_ms))

    def get(self, key_id: str) -> tuple[MerchantKey, str] | None:
        """The key's record and its secret hash, or None when the id is unknown."""
        raw = self.client.hgetall(self.keys.merchant_key(key_id))
        if not raw:
            return None
        fields = {_text(name): _text(value) for name, value in raw.items()}  # type: ignore[union-attr]
        revoked = fields.get("revoked_ms")
        merchant_key = MerchantKey(
            key_id=key_id,
            merchant=fields["merchant"],
            created_ms=int(fields["created_ms"]),
            revoked_ms=int(revoked) if revoked else None,
        )
        return merchant_key, fields["secret_sha256"]

    def list(self) -> list[MerchantKey]:
        key_ids = sorted(_text(key_id) for key_id in self.client.smembers(self.keys.merchant_keys()))  # type: ignore[union-attr]
        keys = [found[0] for key_id in key_ids if (found := self.get(key_id)) is not None]
        return sorted(keys, key=lambda key: (key.merchant, key.created_ms))

    def revoke(self, key_id: str, now_ms: int) -> MerchantKey:
        """Mark the key revoked (from then on it gets 401); raises MerchantKeyError for an unknown id."""
        found = self.get(key_id)
        if found is None:
            raise MerchantKeyError(f"no merchant API key with id {key_id!r} (see `merchant-keys list`)")
        merchant_key, _ = found
        if not merchant_key.active:
            return merchant_key
        self.client.hset(self.keys.merchant_key(key_id), "revoked_ms", str(now_ms))
        return MerchantKey(merchant_key.key_id, merchant_key.merchant, merchant_key.created_ms, now_ms)

    def authenticate(self, presented: str) -> MerchantKey | None:
        """The active key whose secret matches ``presented``, else None (malformed, unknown, wrong or revoked)."""
        parts = MERCHANT_KEYS.split(presented)
        key_id, secret = parts if parts is not None else ("", presented)
        found = self.get(key_id) if parts is not None else None
        matches = secret_matches(secret, found[1] if found is not None else None)
        if found is None or not matches or not found[0].active:
            return None
        return found[0]
