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
- ``parcel:<tracking number>`` the parcel's notifications, job id → endpoint: what an erasure deletes
  (jobs, idempotency keys, lanes) without a SCAN. Set with the job; its expiry is pushed to the
  idempotency TTL at enqueue and at completion, so it outlives every idempotency key it names.

A customer's erasure (``erase_parcel``, ``SubscriptionStore.erase_tracking_number``) deletes the
parcel's index, queued jobs, lanes, idempotency keys and its tracking-number subscriptions (with their
e-mail addresses and index entries); merchant subscriptions stay. A job the delivery loop holds while
its parcel is erased is not stored again: completing or rescheduling a job whose key is gone is a no-op.
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
redis.call('HSET', KEYS[6], ARGV[3], ARGV[7])
redis.call('EXPIRE', KEYS[6], ARGV[6])
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
# KEYS: idem, job, lane, ready, parcel index; ARGV: job id, tracking, final state, ttl, now_ms.
# A job whose key is gone was erased meanwhile: nothing is stored again.
_COMPLETE: Final = """
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[4])
redis.call('EXPIRE', KEYS[5], ARGV[4])
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
if redis.call('ZCARD', KEYS[3]) > 0 then
  redis.call('ZADD', KEYS[4], ARGV[5], ARGV[2])
else
  redis.call('ZREM', KEYS[4], ARGV[2])
end
return 1
"""
# KEYS: job, ready; ARGV: job json, tracking, due ms. Unless the job was erased meanwhile.
_RESCHEDULE: Final = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
return 1
"""
# KEYS: parcel index; ARGV: job key prefix, idem key prefix, lane key prefix, ready key prefix, tracking.
# Returns {queued jobs deleted, idempotency keys deleted}.
_ERASE_PARCEL: Final = """
local index = redis.call('HGETALL', KEYS[1])
local queued, idem = 0, 0
for i = 1, #index, 2 do
  local job, endpoint = index[i], index[i + 1]
  queued = queued + redis.call('DEL', ARGV[1] .. job)
  idem = idem + redis.call('DEL', ARGV[2] .. job)
  redis.call('DEL', ARGV[3] .. endpoint .. ':' .. ARGV[5])
  redis.call('ZREM', ARGV[4] .. endpoint, ARGV[5])
end
redis.call('DEL', KEYS[1])
return {queued, idem}
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

    def idempotency_prefix(self) -> str:
        return f"{self.base}idem:"

    def idempotency(self, job_id: str) -> str:
        return self.idempotency_prefix() + job_id

    def parcel(self, tracking_number: str) -> str:
        return f"{self.base}parcel:{tracking_number}"

    def job_prefix(self) -> str:
        return f"{self.base}job:"

    def job(self, job_id: str) -> str:
        return self.job_prefix() + job_id

    def lanes_prefix(self) -> str:
        return f"{self.base}lane:"

    def lane_prefix(self, endpoint: str) -> str:
        return f"{self.lanes_prefix()}{endpoint}:"

    def lane(self, endpoint: str, tracking_number: str) -> str:
        return self.lane_prefix(endpoint) + tracking_number

    def ready_prefix(self) -> str:
        return f"{self.base}ready:"

    def ready(self, endpoint: str) -> str:
        return self.ready_prefix() + endpoint

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

    def erase_tracking_number(self, tracking_number: str) -> int:
        """Delete every subscription of this tracking number (and its index entries): a customer's
        erasure. Merchant subscriptions stay. Returns how many were deleted."""
        index = self.keys.subscriptions_of("tracking_number", tracking_number)
        ids = [raw.decode() for raw in self.client.smembers(index)]  # type: ignore[union-attr]
        pipe = self.client.pipeline(transaction=True)
        for subscription_id in ids:
            pipe.delete(self.keys.subscription(subscription_id))
        if ids:
            pipe.srem(self.keys.subscriptions_all(), *ids)
        pipe.delete(index)
        pipe.execute()
        return len(ids)

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
        self._erase = client.register_script(_ERASE_PARCEL)

    def enqueue(self, job: NotificationJob) -> bool:
        """Store the job unless its idempotency key was seen before; True when newly enqueued."""
        endpoint = job.endpoint_id
        keys = [
            self.keys.idempotency(job.job_id),
            self.keys.job(job.job_id),
            self.keys.lane(endpoint, job.tracking_number),
            self.keys.ready(endpoint),
            self.keys.endpoints(),
            self.keys.parcel(job.tracking_number),
        ]
        args = [job.to_json(), job.sequence, job.job_id, job.next_attempt_ms, job.tracking_number, self.ttl_s, endpoint]
        return bool(self._enqueue(keys=keys, args=args))

    def state(self, job_id: str) -> str | None:
        raw = self.client.get(self.keys.idempotency(job_id))
        return raw.decode() if raw else None

    def erase_parcel(self, tracking_number: str) -> tuple[int, int]:
        """Delete the parcel's queued jobs (and their lanes) and idempotency keys: a customer's
        erasure. Returns (queued jobs, idempotency keys) deleted; (0, 0) again for a replay."""
        keys = self.keys
        queued, idempotency_keys = self._erase(
            keys=[keys.parcel(tracking_number)],
            args=[
                keys.job_prefix(),
                keys.idempotency_prefix(),
                keys.lanes_prefix(),
                keys.ready_prefix(),
                tracking_number,
            ],
        )
        return int(queued), int(idempotency_keys)

    def holdings(self, tracking_number: str) -> dict[str, int]:
        """What the outbox holds for a parcel (``parcelstream parcels show``): queued jobs, idempotency keys."""
        job_ids = [raw.decode() for raw in self.client.hkeys(self.keys.parcel(tracking_number))]  # type: ignore[union-attr]
        if not job_ids:
            return {"queued_jobs": 0, "idempotency_keys": 0}
        return {
            "queued_jobs": int(self.client.exists(*(self.keys.job(i) for i in job_ids))),  # type: ignore[arg-type]
            "idempotency_keys": int(self.client.exists(*(self.keys.idempotency(i) for i in job_ids))),  # type: ignore[arg-type]
        }


class Outbox:
    """The delivery loop's side of the outbox (asyncio Redis client)."""

    def __init__(self, client: redis.asyncio.Redis, prefix: str, idempotency_ttl_s: int = IDEMPOTENCY_TTL_S) -> None:
        self.client = client
        self.keys = Keys(prefix)
        self.ttl_s = idempotency_ttl_s
        self._claim = client.register_script(_CLAIM)
        self._complete = client.register_script(_COMPLETE)
        self._reschedule = client.register_script(_RESCHEDULE)
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
                self.keys.parcel(job.tracking_number),
            ],
            args=[job.job_id, job.tracking_number, final_state, self.ttl_s, now_ms],
        )

    async def reschedule(self, job: NotificationJob) -> None:
        """Store the job's new attempt count and due time (a retry, or an unfinished claim released)."""
        await self._reschedule(
            keys=[self.keys.job(job.job_id), self.keys.ready(job.endpoint_id)],
            args=[job.to_json(), job.tracking_number, job.next_attempt_ms],
        )

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
