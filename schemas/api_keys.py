"""The API keys parcelstream hands out: ``<scheme>_<key id>_<secret>``, shown once when created and
stored only as the SHA-256 of the secret.

One scheme serves carriers' ingest keys (``psk``, the gateway in ``producers/``) and merchants'
subscription keys (``pmk``, the tracking service in ``consumers/``): a key is a credential the
pipeline promises its users, so how it looks and how it is checked is part of the contract. The key
id embedded in a presented key finds its record; the secret's hash is compared in constant time, and
an unknown id is compared against a dummy hash, so a wrong key and an unknown key cost the same.
Secrets are 256 random bits, so one SHA-256 is enough (a slow hash protects guessable passwords).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Final

#: Compared against when the key id is unknown, so both paths hash and compare.
_NO_HASH: Final = "0" * 64


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str | None) -> bool:
    """Whether ``secret`` hashes to ``stored_hash``, in constant time; ``None`` (no such key) never
    matches but costs the same work."""
    return hmac.compare_digest(secret_hash(secret), stored_hash or _NO_HASH) and stored_hash is not None


class KeyScheme:
    """Keys starting ``<name>_``: ``psk`` for carriers, ``pmk`` for merchants."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._pattern = re.compile(rf"{re.escape(name)}_([0-9a-f]{{16}})_([A-Za-z0-9_-]{{20,100}})")

    def generate(self) -> tuple[str, str, str]:
        """A fresh (key id, secret, key); the key is what its holder sends as a Bearer token."""
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        return key_id, secret, f"{self.name}_{key_id}_{secret}"

    def split(self, key: str) -> tuple[str, str] | None:
        """(key id, secret) of a well-formed key of this scheme, else None."""
        match = self._pattern.fullmatch(key)
        return (match.group(1), match.group(2)) if match else None


CARRIER_KEYS: Final = KeyScheme("psk")
MERCHANT_KEYS: Final = KeyScheme("pmk")
