"""Byte-value caches with a TTL and a bounded number of entries: in Redis or in this process.

Keys are opaque strings chosen by the caller (the response cache uses keyed hashes); values are
bytes. Both stores evict the oldest entries beyond `max_entries` (in-process: least recently
used; Redis: first stored, tracked in a sorted set trimmed by the same atomic script that writes).
"""
from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from redis.asyncio import Redis

from libs.stores.redis_client import open_redis


class CacheStore(Protocol):
    async def get(self, key: str) -> bytes | None:
        """The value, or None when absent or expired."""

    async def set(self, key: str, value: bytes) -> None:
        """Store value for the store's TTL (evicting the oldest entries beyond its size)."""

    async def close(self) -> None: ...


class InMemoryCacheStore:
    """An LRU of at most `max_entries` entries, each kept `ttl_seconds`."""

    def __init__(self, ttl_seconds: float, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_seconds
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires_at, value = entry
        if self._clock() >= expires_at:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    async def set(self, key: str, value: bytes) -> None:
        self._entries[key] = (self._clock() + self._ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    async def close(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


# KEYS[1]: the entry, KEYS[2]: the index (sorted set: entry key -> time stored, microseconds).
# ARGV: value, ttl (ms), max entries. Drops expired index members, then the oldest beyond the size.
SET_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local ttl = tonumber(ARGV[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
redis.call('ZADD', KEYS[2], now, KEYS[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - ttl * 1000)
local excess = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[3])
if excess > 0 then
  local oldest = redis.call('ZRANGE', KEYS[2], 0, excess - 1)
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, excess - 1)
  redis.call('DEL', unpack(oldest))
end
redis.call('PEXPIRE', KEYS[2], ttl)
return 1
"""


class RedisCacheStore:
    """Entries under `prefix` in Redis, shared by every replica; Redis errors propagate (callers
    treat them as a miss)."""

    def __init__(self, client: Redis, ttl_seconds: float, max_entries: int, prefix: str = "medai:cache:") -> None:
        self._client = client
        self._ttl_ms = max(1, round(ttl_seconds * 1000))
        self._max_entries = max_entries
        self._prefix = prefix
        self._index = f"{prefix}index"
        self._script = client.register_script(SET_SCRIPT)

    async def get(self, key: str) -> bytes | None:
        return await self._client.get(self._prefix + key)

    async def set(self, key: str, value: bytes) -> None:
        await self._script(keys=[self._prefix + key, self._index], args=[value, self._ttl_ms, self._max_entries])

    async def close(self) -> None:
        await self._client.aclose()


def open_cache_store(redis_url: str, ttl_seconds: float, max_entries: int, prefix: str = "medai:cache:") -> CacheStore:
    """Redis when a URL is set, else in-process."""
    if not redis_url:
        return InMemoryCacheStore(ttl_seconds, max_entries)
    return RedisCacheStore(open_redis(redis_url), ttl_seconds, max_entries, prefix)
