"""Per-carrier token bucket in Redis, so every gateway process draws from the same bucket.

Tokens are records: a request costs the number of records it holds (at least 1). The bucket holds
up to ``burst`` tokens and refills at ``rate`` per second. The refill and the take run in one Lua
script (atomic in Redis) on Redis's own clock, so several gateway processes on hosts with skewed
clocks still share one limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from redis.asyncio import Redis

_TOKEN_BUCKET: Final = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'time')
local tokens = tonumber(state[1]) or burst
local last = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - last) * rate)
local allowed = 0
local wait = (cost - tokens) / rate
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
  wait = 0
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'time', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, tostring(wait)}
"""


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    retry_after_s: int  # whole seconds to wait before the same request can pass (0 when allowed)


class RateLimiter:
    def __init__(self, redis: Redis, prefix: str, rate: float, burst: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.rate = rate
        self.burst = burst
        self._script = redis.register_script(_TOKEN_BUCKET)

    async def take(self, carrier: str, records: int) -> RateDecision:
        # A request larger than the bucket waits for a full bucket rather than never passing.
        cost = min(max(records, 1), self.burst)
        allowed, wait = await self._script(
            keys=[f"{self.prefix}:gateway:rate:{carrier}"], args=[self.rate, self.burst, cost]
        )
        if int(allowed):
            return RateDecision(True, 0)
        return RateDecision(False, max(1, math.ceil(float(wait))))
