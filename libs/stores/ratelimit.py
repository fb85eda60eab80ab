"""Rate-limit buckets (GCRA): in Redis (one atomic Lua script) or in this process, same arithmetic.

GCRA keeps one number per key, the theoretical arrival time (TAT): each unit of cost pushes it
`60 / per_minute` seconds further; a request is admitted while `TAT + cost - burst <= now`.
`acquire` admits-and-charges (requests); `acquire(cost=0)` only asks "is the key in budget?" and
`charge` records usage that is known afterwards (generated tokens), so a key may run into debt by
one call and is then refused until the debt has drained.

`FallbackRateLimitStore` answers from the in-process store while Redis cannot be reached and goes
back to Redis after `retry_seconds` (limits are then per replica until Redis answers again).
"""
from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from libs.stores.redis_client import open_redis

log = logging.getLogger(__name__)

RATE_LIMIT_STORE_ERRORS = Counter(
    "medai_rate_limit_store_errors_total", "Rate-limit decisions taken in-process because Redis did not answer"
)
MAX_LOCAL_KEYS = 100_000
# Seconds of floating-point slack when comparing arrival times: (now + n*i) - n*i may land a hair after now.
EPSILON_SECONDS = 1e-6


@dataclass(frozen=True)
class Limit:
    """`per_minute` units per minute, at most `burst` units at once (a fresh key's allowance)."""

    per_minute: float
    burst: float

    @property
    def interval(self) -> float:
        """Seconds one unit costs."""
        return 60.0 / self.per_minute

    @property
    def tolerance(self) -> float:
        return self.burst * self.interval


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_seconds: float = 0.0


class RateLimitStore(Protocol):
    async def acquire(self, key: str, limit: Limit, cost: float = 1.0) -> Decision:
        """Admit and charge `cost` when the key's bucket holds it; else a refusal with the wait."""

    async def charge(self, key: str, limit: Limit, cost: float) -> None:
        """Charge `cost` whatever the balance (usage known only after the work)."""

    async def close(self) -> None: ...


def _gcra(tat: float | None, now: float, limit: Limit, cost: float, force: bool) -> tuple[Decision, float | None]:
    """(decision, new TAT or None when unchanged) for one step of GCRA."""
    tat = max(tat if tat is not None else now, now)
    new_tat = tat + cost * limit.interval
    allow_at = new_tat - limit.tolerance
    if not force and allow_at - now > EPSILON_SECONDS:
        return Decision(False, allow_at - now), None
    return Decision(True), new_tat


class InMemoryRateLimitStore:
    """Buckets in this process (an LRU of at most `max_keys` keys)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_keys: int = MAX_LOCAL_KEYS) -> None:
        self._clock = clock
        self._max_keys = max_keys
        self._tats: OrderedDict[str, float] = OrderedDict()

    async def acquire(self, key: str, limit: Limit, cost: float = 1.0) -> Decision:
        return self.acquire_now(key, limit, cost)

    def acquire_now(self, key: str, limit: Limit, cost: float = 1.0) -> Decision:
        """`acquire` without awaiting (the buckets are in this process)."""
        return self._step(key, limit, cost, force=False)

    async def charge(self, key: str, limit: Limit, cost: float) -> None:
        self._step(key, limit, cost, force=True)

    async def close(self) -> None:
        self._tats.clear()

    def _step(self, key: str, limit: Limit, cost: float, *, force: bool) -> Decision:
        decision, new_tat = _gcra(self._tats.get(key), self._clock(), limit, cost, force)
        if new_tat is not None:
            self._tats[key] = new_tat
            self._tats.move_to_end(key)
            while len(self._tats) > self._max_keys:
                self._tats.popitem(last=False)
        return decision


# KEYS[1]: the bucket. ARGV: interval (ms per unit), tolerance (ms), cost, force ("1": charge always).
# Redis's own clock, so every gateway replica agrees on "now". Answers {allowed, retry_after_ms}.
GCRA_SCRIPT = """
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + cost * interval
local allow_at = new_tat - tolerance
if ARGV[4] ~= '1' and allow_at - now > 0.001 then
  return {0, tostring(allow_at - now)}
end
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.max(1, math.ceil(new_tat - now)))
return {1, '0'}
"""


class RedisRateLimitStore:
    """Buckets in Redis under `prefix`, shared by every gateway replica (one Lua script per decision)."""

    def __init__(self, client: Redis, prefix: str = "medai:rl:") -> None:
        self._client = client
        self._prefix = prefix
        self._script = client.register_script(GCRA_SCRIPT)

    async def acquire(self, key: str, limit: Limit, cost: float = 1.0) -> Decision:
        return await self._step(key, limit, cost, force=False)

    async def charge(self, key: str, limit: Limit, cost: float) -> None:
        await self._step(key, limit, cost, force=True)

    async def close(self) -> None:
        await self._client.aclose()

    async def _step(self, key: str, limit: Limit, cost: float, *, force: bool) -> Decision:
        allowed, retry_ms = await self._script(
            keys=[self._prefix + key],
            args=[repr(limit.interval * 1000), repr(limit.tolerance * 1000), repr(cost), "1" if force else "0"],
        )
        return Decision(bool(allowed), float(retry_ms) / 1000)


class FallbackRateLimitStore:
    """The primary (Redis) store; the fallback (in-process) while the primary fails."""

    def __init__(self, primary: RateLimitStore, fallback: RateLimitStore, retry_seconds: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._primary = primary
        self._fallback = fallback
        self._retry_seconds = retry_seconds
        self._clock = clock
        self._down_until = -math.inf

    @property
    def degraded(self) -> bool:
        """True while decisions come from the fallback."""
        return self._clock() < self._down_until

    async def acquire(self, key: str, limit: Limit, cost: float = 1.0) -> Decision:
        if not self.degraded:
            try:
                return await self._primary.acquire(key, limit, cost)
            except (RedisError, OSError) as error:
                self._failed(error)
        return await self._fallback.acquire(key, limit, cost)

    async def charge(self, key: str, limit: Limit, cost: float) -> None:
        if not self.degraded:
            try:
                await self._primary.charge(key, limit, cost)
                return
            except (RedisError, OSError) as error:
                self._failed(error)
        await self._fallback.charge(key, limit, cost)

    async def close(self) -> None:
        await self._primary.close()
        await self._fallback.close()

    def _failed(self, error: Exception) -> None:
        RATE_LIMIT_STORE_ERRORS.inc()
        log.warning("rate-limit store unavailable, limiting in-process",
                    extra={"error": type(error).__name__, "retry_seconds": self._retry_seconds})
        self._down_until = self._clock() + self._retry_seconds


def open_rate_limit_store(redis_url: str, retry_seconds: float = 5.0) -> RateLimitStore:
    """Redis (falling back to in-process while it fails) when a URL is set, else in-process."""
    if not redis_url:
        return InMemoryRateLimitStore()
    return FallbackRateLimitStore(RedisRateLimitStore(open_redis(redis_url)), InMemoryRateLimitStore(),
                                  retry_seconds)
