"""Conversation sessions in Redis (`APP_REDIS_URL`): shared by every conversation worker, kept across restarts.

A session is a hash (owner, system prompt) and a list of turns (JSON), keyed by owner and name, both
under one hash tag so a Redis Cluster keeps them on one shard. Appending runs as one Lua script: the owner check, the
append, the trim to the newest `max_turns` and the TTL renewal happen atomically, so concurrent
turns are never lost or interleaved with another owner's. When Redis cannot be reached, every
call fails with StoreUnavailable (UNAVAILABLE to the client) rather than answering from partial state.
"""
from __future__ import annotations

import contextlib
import hashlib
import json

from redis.asyncio import Redis

from libs.stores.redis_client import open_redis, redis_unavailable_as
from libs.stores.sessions import STORE_NAME, Session, SessionNotFound, Turn

_APPEND = """
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner and owner ~= ARGV[1] then return false end
if not owner then redis.call('DEL', KEYS[2]) end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'system', ARGV[2])
redis.call('RPUSH', KEYS[2], ARGV[3])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[4]), -1)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return redis.call('LRANGE', KEYS[2], 0, -1)
"""
_DELETE = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1], KEYS[2])
"""


class RedisSessionStore:
    """The SessionStore protocol on Redis; sessions expire `ttl_seconds` after their last turn."""

    def __init__(self, client: Redis, ttl_seconds: float, max_turns: int, prefix: str = "medai:session:",
                 *, owns_client: bool = False) -> None:
        self._client = client
        self._ttl_ms = max(1, int(ttl_seconds * 1000))
        self._max_turns = max_turns
        self._prefix = prefix
        self._owns_client = owns_client
        self._append = client.register_script(_APPEND)
        self._delete = client.register_script(_DELETE)

    @classmethod
    def from_url(cls, url: str, ttl_seconds: float, max_turns: int,
                 prefix: str = "medai:session:") -> RedisSessionStore:
        return cls(open_redis(url), ttl_seconds, max_turns, prefix, owns_client=True)

    async def get(self, session_id: str, owner: str) -> Session | None:
        session_key, turns_key = self._keys(owner, session_id)
        async with _available(), self._client.pipeline(transaction=True) as pipe:
            pipe.hgetall(session_key).lrange(turns_key, 0, -1)
            fields, turns = await pipe.execute()
        if fields.get(b"owner", b"").decode() != owner:
            return None
        return Session(session_id, owner, _system(fields.get(b"system")), _turns(turns))

    async def append(self, session_id: str, owner: str, turn: Turn, system_prompt: str | None) -> Session:
        async with _available():
            turns = await self._append(
                keys=self._keys(owner, session_id),
                args=[owner, json.dumps(system_prompt), json.dumps([turn.user, turn.assistant]), self._max_turns,
                      self._ttl_ms],
            )
        if turns is None:
            raise SessionNotFound()
        return Session(session_id, owner, system_prompt, _turns(turns))

    async def delete(self, session_id: str, owner: str) -> bool:
        async with _available():
            return bool(await self._delete(keys=self._keys(owner, session_id), args=[owner]))

    async def check(self) -> None:
        async with _available():
            await self._client.ping()

    async def close(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    def _key(self, owner: str, session_id: str) -> str:
        """Named within its owner (a hash of it: owner ids are opaque to Redis users); one hash tag for both keys."""
        return f"{self._prefix}{{{_owner_tag(owner)}:{session_id}}}"

    def _keys(self, owner: str, session_id: str) -> list[str]:
        key = self._key(owner, session_id)
        return [key, f"{key}:turns"]


def _available() -> contextlib.AbstractAsyncContextManager[None]:
    return redis_unavailable_as(STORE_NAME)


def _owner_tag(owner: str) -> str:
    return hashlib.sha256(owner.encode()).hexdigest()[:32]


def _system(raw: bytes | None) -> str | None:
    return json.loads(raw) if raw else None


def _turns(raw: list[bytes]) -> tuple[Turn, ...]:
    return tuple(Turn(*json.loads(item)) for item in raw)
