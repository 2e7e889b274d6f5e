"""Subscriptions and notification jobs: plain dataclasses and pure functions, no I/O."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

from consumers.notifier.messages import DEFAULT_LANGUAGE, LANGUAGES, webhook_payload
from schemas.statuses import STATUSES

Scope = Literal["merchant", "tracking_number"]
Channel = Literal["webhook", "email"]
SCOPES: tuple[str, ...] = get_args(Scope)
CHANNELS: tuple[str, ...] = get_args(Channel)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class SubscriptionError(ValueError):
    """A subscription that cannot be created as asked; ``field`` names the argument of ``new_subscription``
    that is wrong (the HTTP API turns it into a field path), the message says why."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Subscription:
    """Who is told about which parcels' status changes, how, and in which language."""

    subscription_id: str
    scope: Scope
    target: str  # the merchant id, or the recipient's tracking number
    channel: Channel
    address: str  # webhook URL or e-mail address; personal data: never logged
    secret: str = ""  # webhook signing secret; never logged
    language: str = DEFAULT_LANGUAGE
    statuses: frozenset[str] = frozenset()  # empty: every status
    created_ms: int = 0

    def wants(self, status: str) -> bool:
        return not self.statuses or status in self.statuses

    @property
    def endpoint_id(self) -> str:
        return endpoint_id(self.channel, self.address)

    def describe(self) -> str:
        """A log-safe one-liner (no secret, no address)."""
        return f"{self.subscription_id} ({self.channel} for {self.scope} {self.target})"

    def to_json(self) -> str:
        data = asdict(self)
        data["statuses"] = sorted(self.statuses)
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str | bytes) -> Subscription:
        data = json.loads(text)
        data["statuses"] = frozenset(data.get("statuses") or ())
        return cls(**data)


def endpoint_id(channel: str, address: str) -> str:
    """Stable id of a delivery endpoint (one queue and rate limit each), without exposing the address."""
    return hashlib.sha256(f"{channel}\x00{address}".encode()).hexdigest()[:16]


def mask_address(channel: str, address: str) -> str:
    """What may be shown of an address: the webhook's scheme and host, or the e-mail's domain."""
    if channel == "email":
        return "***@" + address.rpartition("@")[2]
    parts = urlsplit(address)
    return f"{parts.scheme}://{parts.netloc}/…"


def new_subscription(
    *,
    scope: str,
    target: str,
    channel: str,
    address: str,
    secret: str | None = None,
    language: str = DEFAULT_LANGUAGE,
    statuses: Iterable[str] = (),
    created_ms: int = 0,
) -> Subscription:
    """Validate the user's input and build a subscription; a webhook without a secret gets a random one."""
    if scope not in SCOPES:
        raise SubscriptionError(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}", "scope")
    if not target.strip():
        raise SubscriptionError(f"a {scope} subscription needs a {scope.replace('_', ' ')}", "target")
    if channel not in CHANNELS:
        raise SubscriptionError(f"channel must be one of {', '.join(CHANNELS)}, not {channel!r}", "channel")
    if channel == "webhook":
        parts = urlsplit(address)
        has_blanks = any(c.isspace() or not c.isprintable() for c in address)
        if parts.scheme not in ("http", "https") or not parts.netloc or has_blanks:
            raise SubscriptionError("the webhook URL must be an absolute http(s):// URL without spaces", "address")
        secret = secret or secrets.token_urlsafe(32)
    else:
        if not _EMAIL.match(address):
            raise SubscriptionError("the e-mail address is not valid", "address")
        secret = ""
    if language not in LANGUAGES:
        raise SubscriptionError(f"language must be one of {', '.join(LANGUAGES)}, not {language!r}", "language")
    wanted = frozenset(statuses)
    unknown = sorted(wanted - set(STATUSES))
    if unknown:
        raise SubscriptionError(f"unknown status {', '.join(unknown)}; known: {', '.join(STATUSES)}", "statuses")
    return Subscription(
        subscription_id=uuid.uuid4().hex[:16],
        scope=scope,  # type: ignore[arg-type]
        target=target.strip(),
        channel=channel,  # type: ignore[arg-type]
        address=address,
        secret=secret,
        language=language,
        statuses=wanted,
        created_ms=created_ms,
    )


def idempotency_key(subscription_id: str, update_id: str) -> str:
    """One key per (subscription, status change): a replayed or duplicated update maps to the same job."""
    return hashlib.sha256(f"{subscription_id}\x00{update_id}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class NotificationJob:
    """One notification to deliver: a snapshot of the subscription's endpoint and the payload."""

    job_id: str  # the idempotency key
    subscription_id: str
    channel: Channel
    address: str
    secret: str
    language: str
    tracking_number: str
    sequence: int
    update_id: str
    payload: dict[str, Any]
    created_ms: int
    attempts: int = 0
    next_attempt_ms: int = 0
    last_error: str = field(default="")

    @property
    def endpoint_id(self) -> str:
        return endpoint_id(self.channel, self.address)

    def body(self) -> bytes:
        """The exact bytes sent (and signed) for a webhook."""
        return json.dumps(self.payload, separators=(",", ":"), ensure_ascii=False).encode()

    def retried(self, error: str, next_attempt_ms: int) -> NotificationJob:
        return replace(self, attempts=self.attempts + 1, next_attempt_ms=next_attempt_ms, last_error=error)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> NotificationJob:
        return cls(**json.loads(text))

    def describe(self) -> str:
        """Log-safe: no address, no secret."""
        return f"{self.channel} job {self.job_id[:12]} (subscription {self.subscription_id}, update {self.update_id})"


def matching_subscriptions(update: dict[str, Any], subscriptions: Iterable[Subscription]) -> list[Subscription]:
    """The subscriptions that want this update: same merchant or tracking number, and the status wanted."""
    matched = []
    for subscription in subscriptions:
        if subscription.scope == "merchant":
            in_scope = update.get("merchant") is not None and subscription.target == update["merchant"]
        else:
            in_scope = subscription.target == update["tracking_number"]
        if in_scope and subscription.wants(update["status"]):
            matched.append(subscription)
    return matched


def jobs_for_update(
    update: dict[str, Any], subscriptions: Iterable[Subscription], now_ms: int
) -> list[NotificationJob]:
    """One job per matching subscription, due now."""
    jobs = []
    for subscription in matching_subscriptions(update, subscriptions):
        key = idempotency_key(subscription.subscription_id, update["update_id"])
        jobs.append(
            NotificationJob(
                job_id=key,
                subscription_id=subscription.subscription_id,
                channel=subscription.channel,
                address=subscription.address,
                secret=subscription.secret,
                language=subscription.language,
                tracking_number=update["tracking_number"],
                sequence=int(update["sequence"]),
                update_id=update["update_id"],
                payload=webhook_payload(update, subscription.subscription_id, key, subscription.language),
                created_ms=now_ms,
                next_attempt_ms=now_ms,
            )
        )
    return jobs
