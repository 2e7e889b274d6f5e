from __future__ import annotations

import random

import pytest

from consumers.notifier.policy import RetryPolicy, TokenBucket, Verdict, classify_http_status, parse_retry_after


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, Verdict.SENT),
        (204, Verdict.SENT),
        (301, Verdict.FAIL),
        (400, Verdict.FAIL),
        (401, Verdict.FAIL),
        (404, Verdict.FAIL),
        (408, Verdict.RETRY),
        (429, Verdict.RETRY),
        (500, Verdict.RETRY),
        (503, Verdict.RETRY),
    ],
)
def test_http_status_classification(status: int, verdict: Verdict) -> None:
    assert classify_http_status(status) is verdict


def test_default_policy_is_aftership_like() -> None:
    policy = RetryPolicy()
    rng = random.Random(7)
    delays = [policy.delay_s(n, rng) for n in range(14)]
    for n, delay in enumerate(delays):
        assert 30 * 2**n <= delay <= 30 * 2**n * 1.1
    assert not policy.gives_up(14)  # the first attempt + 13 retries: one retry left
    assert policy.gives_up(15)


def test_retry_after_lengthens_but_never_shortens_the_wait() -> None:
    policy = RetryPolicy(base_delay_s=1.0, jitter=0.0)
    rng = random.Random(1)
    assert policy.delay_s(0, rng, retry_after_s=120) == 120
    assert policy.delay_s(3, rng, retry_after_s=0.5) == 8
    assert policy.delay_s(0, rng, retry_after_s=10**9) == policy.max_retry_after_s


@pytest.mark.parametrize(
    ("header", "seconds"), [("120", 120.0), ("0", 0.0), (None, None), ("-3", None), ("Wed, 21 Oct", None)]
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header) == seconds


def test_token_bucket_allows_a_burst_then_paces() -> None:
    bucket = TokenBucket(rate=2.0, capacity=3.0)
    assert [bucket.take(100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = bucket.take(100.0)
    assert wait == pytest.approx(0.5)
    assert bucket.take(100.0 + wait) == 0.0
    assert bucket.take(200.0) == 0.0  # refilled, but never above capacity
    assert [bucket.take(200.0) for _ in range(2)] == [0.0, 0.0]
    assert bucket.take(200.0) > 0
