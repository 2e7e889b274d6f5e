"""Redis storage of the notifier: subscriptions and the durable notification outbox.

Keys, all under ``<prefix>:notifier:``:

- ``sub:<id>`` subscription JSON; ``subs:all``, ``subs:merchant:<m>``, ``subs:tracking_number:<tn>`` id sets
- ``merchant-key:<key id>`` a merchant API key (merchant, SHA-256 of its secret, created/revoked times);
  ``merchant-keys`` the key ids (``merchant_keys.py``)
- ``idem:<key>`` state of a notification: ``queued``, then ``delivered`` or ``dead_lettered``. Set with
  NX together with the job (one Lua script), so a replayed or duplicated update never enqueues twice.
- ``job:<key>`` the job JSON while it is pending
- ``lane:<endpoint>:<tracking number>`` pending job ids of one parcel for one endpoint, by ``sequence``:
  only the head is delivered, so a parcel's updates reach an endpoint in order
- ``ready:<endpoint>`` tracking numbers whose lane head is due, scored by due time (ms); a claimed lane
  is pushed to now + lease so a second notifier process does not take it too
- ``endpoints`` endpoints with pending work (each gets its own delivery task)
"""

from __future__ import annotations

from typing import Final

import redis
import redis.asyncio

from consumers.movements import Keys as MovementKeys
from consumers.movements import customer_movement
from consumers.notifier.model import NotificationJob, Subscription

IDEMPOTENCY_TTL_S: Final = 35 * 24 * 3600  # longer than status-updates' 30-day retention: replays stay deduplicated

_ENQUEUE: Final = """
if not redis.call('SET', KEYS[1], 'queued', 'NX', 'EX', ARGV[6]) then return 0 end
redis.call('SET', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[3])
if redis.call('ZRANGE', KEYS[3], 0, 0)[1] == ARGV[3] then redis.call('ZADD', KEYS[4], ARGV[4], ARGV[5]) end
redis.call('SADD', KEYS[5], ARGV[7])
return 1
"""
# KEYS: ready; ARGV: now_ms, lease_until_ms, limit, lane key prefix, job key prefix.
# Returns [tracking, job json, ...] for due lanes, pushing each claimed lane to the lease time.
_CLAIM: Final = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, tracking in ipairs(due) do
  local head = redis.call('ZRANGE', ARGV[4] .. tracking, 0, 0)[1]
  local job = head and redis.call('GET', ARGV[5] .. head)
  if job then
    redis.call('ZADD', KEYS[1], ARGV[2], tracking)
    table.insert(out, tracking)
    table.insert(out, job)
  else
    redis.call('ZREM', KEYS[1], tracking)
  end
end
return out
"""
# KEYS: idem, job, lane, ready; ARGV: job id, tracking, final state, ttl, now_ms.
_COMPLETE: Final = """
redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[4])
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
if redis.call('ZCARD', KEYS[3]) > 0 then
  redis.call('ZADD', KEYS[4], ARGV[5], ARGV[2])
else
  redis.call('ZREM', KEYS[4], ARGV[2])
end
return 1
"""
# KEYS: ready, endpoints; ARGV: endpoint id. Drops an endpoint with nothing pending (atomic with enqueue).
_RETIRE_ENDPOINT: Final = """
if redis.call('ZCARD', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[1]) return 1 end
return 0
"""


class Keys:
    def __init__(self, prefix: str) -> None:
        self.base = f"{prefix}:notifier:"

    def subscription(self, subscription_id: str) -> str:
        return f"{self.base}sub:{subscription_id}"

    def subscriptions_all(self) -> str:
        return f"{self.base}subs:all"

    def subscriptions_of(self, scope: str, target: str) -> str:
        return f"{self.base}subs:{scope}:{target}"

    def merchant_key(self, key_id: str) -> str:
        return f"{self.base}merchant-key:{key_id}"

    def merchant_keys(self) -> str:
        return f"{self.base}merchant-keys"

    def idempotency(self, job_id: str) -> str:
        return f"{self.base}idem:{job_id}"

    def job_prefix(self) -> str:
        return f"{self.base}job:"

    def job(self, job_id: str) -> str:
        return self.job_prefix() + job_id

    def lane_prefix(self, endpoint: str) -> str:
        return f"{self.base}lane:{endpoint}:"

    def lane(self, endpoint: str, tracking_number: str) -> str:
        return self.lane_prefix(endpoint) + tracking_number

    def ready(self, endpoint: str) -> str:
        return f"{self.base}ready:{endpoint}"

    def endpoints(self) -> str:
        return f"{self.base}endpoints"


class SubscriptionStore:
    """Subscriptions in Redis, indexed by merchant and by tracking number."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.keys = Keys(prefix)
        self.movement_keys = MovementKeys(prefix)

    def movement_of(self, tracking_number: str) -> dict[str, str] | None:
        """The flight, block train or sea container the parcel travels on, as the projector's movement
        board knows it (``consumers/movements.py``), so messages name it like the tracking page."""
        return customer_movement(self.client.hget(self.movement_keys.board(tracking_number), "mv"))

    def add(self, subscription: Subscription) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.set(self.keys.subscription(subscription.subscription_id), subscription.to_json())
        pipe.sadd(self.keys.subscriptions_all(), subscription.subscription_id)
        pipe.sadd(self.keys.subscriptions_of(subscription.scope, subscription.target), subscription.subscription_id)
        pipe.execute()

    def get(self, subscription_id: str) -> Subscription | None:
        raw = self.client.get(self.keys.subscription(subscription_id))
        return Subscription.from_json(raw) if raw else None

    def remove(self, subscription_id: str) -> Subscription | None:
        subscription = self.get(subscription_id)
        if subscription is None:
            return None
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(self.keys.subscription(subscription_id))
        pipe.srem(self.keys.subscriptions_all(), subscription_id)
        pipe.srem(self.keys.subscriptions_of(subscription.scope, subscription.target), subscription_id)
        pipe.execute()
        return subscription

    def _load(self, ids: list[bytes] | set[bytes]) -> list[Subscription]:
        if not ids:
            return []
        raws = self.client.mget([self.keys.subscription(i.decode()) for i in sorted(ids)])
        return [Subscription.from_json(raw) for raw in raws if raw]

    def all(self) -> list[Subscription]:
        return self._load(self.client.smembers(self.keys.subscriptions_all()))  # type: ignore[arg-type]

    def of(self, scope: str, target: str) -> list[Subscription]:
        """The subscriptions of one merchant or one tracking number."""
        return self._load(self.client.smembers(self.keys.subscriptions_of(scope, target)))  # type: ignore[arg-type]

    def count_of(self, scope: str, target: str) -> int:
        return int(self.client.scard(self.keys.subscriptions_of(scope, target)))  # type: ignore[arg-type]

    def for_update(self, merchant: str | None, tracking_number: str) -> list[Subscription]:
        """Candidates for one update (status filters are applied by ``model.matching_subscriptions``)."""
        index_keys = [self.keys.subscriptions_of("tracking_number", tracking_number)]
        if merchant:
            index_keys.append(self.keys.subscriptions_of("merchant", merchant))
        return self._load(self.client.sunion(index_keys))  # type: ignore[arg-type]


class OutboxWriter:
    """The consumer's side of the outbox: enqueue jobs exactly once per idempotency key."""

    def __init__(self, client: redis.Redis, prefix: str, idempotency_ttl_s: int = IDEMPOTENCY_TTL_S) -> None:
        self.client = client
        self.keys = Keys(prefix)
        self.ttl_s = idempotency_ttl_s
        self._enqueue = client.register_script(_ENQUEUE)

    def enqueue(self, job: NotificationJob) -> bool:
        """Store the job unless its idempotency key was seen before; True when newly enqueued."""
        endpoint = job.endpoint_id
        keys = [
            self.keys.idempotency(job.job_id),
            self.keys.job(job.job_id),
            self.keys.lane(endpoint, job.tracking_number),
            self.keys.ready(endpoint),
            self.keys.endpoints(),
        ]
        args = [job.to_json(), job.sequence, job.job_id, job.next_attempt_ms, job.tracking_number, self.ttl_s, endpoint]
        return bool(self._enqueue(keys=keys, args=args))

    def state(self, job_id: str) -> str | None:
        raw = self.client.get(self.keys.idempotency(job_id))
        return raw.decode() if raw else None


class Outbox:
    """The delivery loop's side of the outbox (asyncio Redis client)."""

    def __init__(self, client: redis.asyncio.Redis, prefix: str, idempotency_ttl_s: int = IDEMPOTENCY_TTL_S) -> None:
        self.client = client
        self.keys = Keys(prefix)
        self.ttl_s = idempotency_ttl_s
        self._claim = client.register_script(_CLAIM)
        self._complete = client.register_script(_COMPLETE)
        self._retire = client.register_script(_RETIRE_ENDPOINT)

    async def endpoints(self) -> set[str]:
        return {raw.decode() for raw in await self.client.smembers(self.keys.endpoints())}  # type: ignore[misc]

    async def claim(self, endpoint: str, now_ms: int, lease_ms: int, limit: int) -> list[NotificationJob]:
        """Take up to ``limit`` due lane heads of one endpoint (one job per parcel)."""
        raw = await self._claim(
            keys=[self.keys.ready(endpoint)],
            args=[now_ms, now_ms + lease_ms, limit, self.keys.lane_prefix(endpoint), self.keys.job_prefix()],
        )
        return [NotificationJob.from_json(raw[i + 1]) for i in range(0, len(raw), 2)]

    async def complete(self, job: NotificationJob, final_state: str, now_ms: int) -> None:
        """Mark the job ``delivered`` or ``dead_lettered`` and let the parcel's next job go."""
        endpoint = job.endpoint_id
        await self._complete(
            keys=[
                self.keys.idempotency(job.job_id),
                self.keys.job(job.job_id),
                self.keys.lane(endpoint, job.tracking_number),
                self.keys.ready(endpoint),
            ],
            args=[job.job_id, job.tracking_number, final_state, self.ttl_s, now_ms],
        )

    async def reschedule(self, job: NotificationJob) -> None:
        """Store the job's new attempt count and due time (a retry, or an unfinished claim released)."""
        pipe = self.client.pipeline(transaction=True)
        pipe.set(self.keys.job(job.job_id), job.to_json())
        pipe.zadd(self.keys.ready(job.endpoint_id), {job.tracking_number: job.next_attempt_ms})
        await pipe.execute()

    async def next_due_ms(self, endpoint: str) -> int | None:
        head = await self.client.zrange(self.keys.ready(endpoint), 0, 0, withscores=True)
        return int(head[0][1]) if head else None

    async def retire_endpoint(self, endpoint: str) -> bool:
        """Forget an endpoint with nothing pending; False when work arrived meanwhile."""
        return bool(await self._retire(keys=[self.keys.ready(endpoint), self.keys.endpoints()], args=[endpoint]))

    async def pending_count(self) -> int:
        """Jobs not yet delivered or dead-lettered (for tests and the summary)."""
        count = 0
        async for _key in self.client.scan_iter(match=self.keys.job_prefix() + "*", count=500):
            count += 1
        return count
