"""Retry policy, response classification and per-endpoint rate limits: pure, clock passed in."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import Enum


class Verdict(Enum):
    SENT = "sent"
    RETRY = "retry"  # transient: 5xx, 408, 429, timeout, connection error
    FAIL = "fail"  # permanent: other 4xx, redirects, refused e-mail recipient


@dataclass(frozen=True)
class AttemptResult:
    verdict: Verdict
    detail: str  # log-safe: status code or error class, never the address
    retry_after_s: float | None = None


def classify_http_status(status_code: int) -> Verdict:
    if 200 <= status_code < 300:
        return Verdict.SENT
    if status_code in (408, 429) or status_code >= 500:
        return Verdict.RETRY
    return Verdict.FAIL


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After: <seconds>`` header (HTTP-date values are ignored)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


@dataclass(frozen=True)
class RetryPolicy:
    """AfterShip-like: up to ``max_retries`` retries after the first attempt, waiting base × 2^n (+ jitter)."""

    max_retries: int = 14
    base_delay_s: float = 30.0
    jitter: float = 0.1  # up to +10 % so endpoints that failed together do not retry in lockstep
    max_retry_after_s: float = 3600.0

    def gives_up(self, attempts_made: int) -> bool:
        """True when ``attempts_made`` attempts (first + retries) used up the budget."""
        return attempts_made > self.max_retries

    def delay_s(self, retry_number: int, rng: random.Random, retry_after_s: float | None = None) -> float:
        """Wait before retry ``retry_number`` (0-based): base × 2^n × (1 + U(0, jitter)), at least Retry-After."""
        delay = self.base_delay_s * (2**retry_number) * (1 + rng.uniform(0, self.jitter))
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.max_retry_after_s))
        return delay


@dataclass
class TokenBucket:
    """``rate`` deliveries per second on average, bursts of up to ``capacity``."""

    rate: float
    capacity: float
    tokens: float = field(default=-1.0)
    updated: float = 0.0

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.capacity

    def take(self, now: float) -> float:
        """Take one token; return 0 when granted, else the seconds to wait before asking again."""
        if self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate
