"""The delivery loop (asyncio): one task per endpoint, so a slow or dead endpoint only delays itself.

Each endpoint task claims due lane heads (at most one job per parcel, so a parcel's updates reach the
endpoint in ``sequence`` order), waits for the endpoint's token bucket, makes one attempt, then marks
the job delivered, reschedules it with backoff, or dead-letters it and marks it done.

At-least-once: the job is marked delivered after the endpoint answered 2xx. A crash between the two
leaves the claim to expire (``lease_s``) and the job is sent once more; receivers de-duplicate on
``X-Parcelstream-Idempotency-Key``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import redis

from consumers.metrics import NOTIFICATIONS
from consumers.notifier.dead_letters import DeadLetterError, DeadLetterProducer
from consumers.notifier.model import NotificationJob
from consumers.notifier.policy import AttemptResult, RetryPolicy, TokenBucket, Verdict
from consumers.notifier.store import Outbox

log = logging.getLogger(__name__)


class Sender(Protocol):
    async def send(self, job: NotificationJob) -> AttemptResult: ...


@dataclass
class DeliveryStats:
    sent: int = 0
    retried: int = 0
    dead_lettered: int = 0


class DeliveryLoop:
    def __init__(
        self,
        outbox: Outbox,
        senders: dict[str, Sender],
        policy: RetryPolicy,
        dead_letters: DeadLetterProducer,
        *,
        rate_per_endpoint: float = 20.0,
        endpoint_concurrency: int = 4,
        lease_s: float = 120.0,
        poll_interval_s: float = 0.2,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.outbox = outbox
        self.senders = senders
        self.policy = policy
        self.dead_letters = dead_letters
        self.rate = rate_per_endpoint
        self.concurrency = max(1, endpoint_concurrency)
        self.lease_ms = int(lease_s * 1000)
        self.poll_interval_s = poll_interval_s
        self.rng = rng or random.Random()
        self.clock = clock
        self.stats = DeliveryStats()
        self._buckets: dict[str, TokenBucket] = {}
        self._stopping = asyncio.Event()

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def run(self, stop: asyncio.Event) -> None:
        """Serve every endpoint with pending work until ``stop`` is set; in-flight attempts finish."""
        self._stopping = stop
        tasks: dict[str, asyncio.Task[None]] = {}
        while not stop.is_set():
            try:
                for endpoint in await self.outbox.endpoints():
                    task = tasks.get(endpoint)
                    if task is None or task.done():
                        tasks[endpoint] = asyncio.create_task(self._serve_endpoint(endpoint, stop))
            except redis.RedisError as error:
                log.warning("notifier: Redis error while listing endpoints (%s); retrying", error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.poll_interval_s)
        await asyncio.gather(*tasks.values(), return_exceptions=True)

    async def _serve_endpoint(self, endpoint: str, stop: asyncio.Event) -> None:
        bucket = self._buckets.setdefault(endpoint, TokenBucket(rate=self.rate, capacity=max(1.0, 2 * self.rate)))
        while not stop.is_set():
            try:
                now = self._now_ms()
                jobs = await self.outbox.claim(endpoint, now, self.lease_ms, self.concurrency)
                if jobs:
                    await asyncio.gather(*(self._deliver(job, bucket) for job in jobs))
                    continue
                next_due = await self.outbox.next_due_ms(endpoint)
                if next_due is None:
                    if await self.outbox.retire_endpoint(endpoint):
                        return
                    continue
                wait_s = min(max(next_due - now, 0) / 1000, self.poll_interval_s)
            except redis.RedisError as error:
                # Claimed jobs come back when their lease expires; nothing is lost.
                log.warning("notifier: Redis error on endpoint %s (%s); retrying", endpoint, error)
                wait_s = self.poll_interval_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait_s)

    async def _deliver(self, job: NotificationJob, bucket: TokenBucket) -> None:
        while (wait_s := bucket.take(time.monotonic())) > 0:  # noqa: ASYNC110 - a token bucket paces, no event to wait on
            await asyncio.sleep(wait_s)
        sender = self.senders[job.channel]
        try:
            result = await sender.send(job)
        except asyncio.CancelledError:
            # Give the claim back at once instead of waiting for the lease to expire.
            await asyncio.shield(self.outbox.reschedule(job))
            raise
        attempts_made = job.attempts + 1
        if result.verdict is Verdict.SENT:
            await self._mark_delivered(job)
            NOTIFICATIONS.labels(channel=job.channel, outcome="sent").inc()
            self.stats.sent += 1
            log.info("notifier: delivered %s after %d attempt(s)", job.describe(), attempts_made)
            return
        if result.verdict is Verdict.RETRY and not self.policy.gives_up(attempts_made):
            delay_s = self.policy.delay_s(job.attempts, self.rng, result.retry_after_s)
            await self.outbox.reschedule(job.retried(result.detail, self._now_ms() + int(delay_s * 1000)))
            NOTIFICATIONS.labels(channel=job.channel, outcome="retried").inc()
            self.stats.retried += 1
            log.info(
                "notifier: %s failed (%s); retry %d in %.1f s", job.describe(), result.detail, attempts_made, delay_s
            )
            return
        await self._dead_letter(job, result, attempts_made)

    async def _mark_delivered(self, job: NotificationJob) -> None:
        """Record the 2xx, waiting out a Redis outage: left to the lease, the job would be sent again."""
        delay_s = self.poll_interval_s
        while True:
            try:
                await self.outbox.complete(job, "delivered", self._now_ms())
                return
            except redis.RedisError as error:
                if self._stopping.is_set():
                    raise  # shutting down: the lease brings the job back (one more send, same idempotency key)
                log.warning("notifier: cannot mark %s delivered (%s); retrying", job.describe(), error)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay_s)
                delay_s = min(2 * delay_s, 5.0)

    async def _dead_letter(self, job: NotificationJob, result: AttemptResult, attempts_made: int) -> None:
        reason_code = "delivery_rejected" if result.verdict is Verdict.FAIL else "retries_exhausted"
        reason = (
            f"{job.channel} notification for update {job.update_id} of {job.tracking_number} "
            f"(subscription {job.subscription_id}) failed after {attempts_made} attempt(s); last: {result.detail}"
        )
        try:
            await asyncio.to_thread(
                self.dead_letters.publish,
                reason_code=reason_code,
                reason=reason,
                payload=job.body(),
                key=job.tracking_number.encode(),
                dead_letter_id=job.job_id,
                source_reference=f"subscription:{job.subscription_id}",
            )
        except DeadLetterError as error:
            # Keep the job: it is dead-lettered on its next turn rather than lost.
            log.warning("notifier: %s; keeping %s", error, job.describe())
            await self.outbox.reschedule(
                job.retried(result.detail, self._now_ms() + int(self.policy.base_delay_s * 1000))
            )
            return
        await self.outbox.complete(job, "dead_lettered", self._now_ms())
        NOTIFICATIONS.labels(channel=job.channel, outcome="dead_lettered").inc()
        self.stats.dead_lettered += 1
        log.warning("notifier: dead-lettered %s: %s", job.describe(), result.detail)
