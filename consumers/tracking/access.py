"""Who may see a parcel: the access decision of the tracking service, apart from its routes.

A look-up needs the parcel's destination postcode or a signed link token. Before deciding, the
service reads only what the decision needs, in one round trip: the parcel's postcode hash (absent
for an unknown parcel) and two failure counters. An unknown parcel, a wrong postcode and a wrong
token therefore cost the same work and get the same 404; the parcel itself is read only once the
look-up is authorised.

Failed look-ups are counted per tracking number and per client address in fixed windows
(``PARCELSTREAM_TRACKING_FAILED_LOOKUP_WINDOW``). Beyond ``..._MAX_FAILED_LOOKUPS_PER_PARCEL`` or
``..._PER_CLIENT`` failures, look-ups without a valid signed link get 429 until the window ends: the
link in the customer's notifications keeps working, trying all of a country's postcodes does not.
Unknown tracking numbers count too (a counter that only existing parcels had would tell which
exist); every counter expires with its window.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from enum import Enum
from typing import Final
from urllib.parse import quote

import redis.asyncio as aioredis

from consumers.read_model import Keys, postcode_hash
from consumers.settings import ConsumerSettings
from consumers.tracking.tokens import verify_token

#: Compared against when there is no stored hash, so every look-up does the same work.
_NO_HASH: Final = "h1:00000000:" + "0" * 64


class Outcome(Enum):
    ALLOWED = "allowed"
    NOT_FOUND = "not_found"  # unknown parcel, wrong or missing credentials: one answer for all
    LOCKED = "locked"  # too many failed look-ups: only a signed link works until the window ends


@dataclass(frozen=True)
class AccessPolicy:
    postcode_key: bytes
    token_secret: str  # "" when links are off (the check still costs the same)
    max_failed_per_parcel: int
    max_failed_per_client: int
    window_s: int

    @classmethod
    def of(cls, settings: ConsumerSettings) -> AccessPolicy:
        return cls(
            postcode_key=settings.postcode_hash_key,
            token_secret=settings.tracking_secret,
            max_failed_per_parcel=settings.tracking_max_failed_lookups_per_parcel,
            max_failed_per_client=settings.tracking_max_failed_lookups_per_client,
            window_s=settings.tracking_failed_lookup_window,
        )


class AccessControl:
    """The look-up decision and its failure counters, in Redis under ``<prefix>:tracking:failed:*``."""

    def __init__(self, keys: Keys, policy: AccessPolicy) -> None:
        self.keys = keys
        self.policy = policy
        # Without a configured secret tokens never verify, but a secret is still hashed with.
        self._token_secret = policy.token_secret or "links-off"

    def _parcel_counter(self, tracking_number: str) -> str:
        return f"{self.keys.prefix}:tracking:failed:parcel:{tracking_number}"

    def _client_counter(self, client: str) -> str:
        return f"{self.keys.prefix}:tracking:failed:client:{quote(client, safe='')}"

    async def decide(
        self, redis: aioredis.Redis, tracking_number: str, client: str, postcode: str | None, token: str | None
    ) -> Outcome:
        """Allowed, not found or locked; counts a failed look-up."""
        parcel_counter, client_counter = self._parcel_counter(tracking_number), self._client_counter(client)
        async with redis.pipeline(transaction=False) as pipe:
            pipe.get(parcel_counter)
            pipe.get(client_counter)
            pipe.hget(self.keys.parcel(tracking_number), "postcode_hash")
            parcel_failures, client_failures, stored = await pipe.execute()
        exists = stored is not None
        stored_hash = stored.decode() if isinstance(stored, bytes) else stored or ""
        token_ok = verify_token(self._token_secret, tracking_number, token or "") and bool(self.policy.token_secret)
        given = postcode_hash(self.policy.postcode_key, tracking_number, postcode or "")
        postcode_ok = hmac.compare_digest(given or _NO_HASH, stored_hash or _NO_HASH) and bool(stored_hash)
        if exists and token is not None and token_ok:
            return Outcome.ALLOWED  # the signed link works even while postcodes are locked
        locked = (
            int(parcel_failures or 0) >= self.policy.max_failed_per_parcel
            or int(client_failures or 0) >= self.policy.max_failed_per_client
        )
        if locked:
            return Outcome.LOCKED
        if exists and postcode is not None and postcode_ok:
            return Outcome.ALLOWED
        await self._count_failure(redis, parcel_counter, client_counter)
        return Outcome.NOT_FOUND

    async def _count_failure(self, redis: aioredis.Redis, *counters: str) -> None:
        async with redis.pipeline(transaction=False) as pipe:
            for counter in counters:
                # The window starts with the first failure and is not extended by later ones.
                pipe.set(counter, 0, ex=self.policy.window_s, nx=True)
                pipe.incr(counter)
            await pipe.execute()


def client_address(host: str | None) -> str:
    """The client's address as the server saw it (behind a proxy: uvicorn's --forwarded-allow-ips)."""
    return host or "unknown"
