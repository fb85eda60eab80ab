"""Conversation sessions in Redis (`APP_REDIS_URL`): shared by every conversation worker, kept across restarts.

A session is a hash (owner, system prompt) and a list of turns (JSON), both under one hash tag so
a Redis Cluster keeps them on one shard. Appending runs as one Lua script: the owner check, the
append, the trim to the newest `max_turns` and the TTL renewal happen atomically, so concurrent
turns are never lost or interleaved with another owner's. When Redis cannot be reached, every
call fails with NotReady (UNAVAILABLE to the client) rather than answering from partial state.
"""
from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis
from redis.exceptions import RedisError

from libs.errors import NotReady
from libs.stores.redis_client import open_redis
from libs.stores.sessions import Session, SessionNotFound, Turn

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
        async with _available(), self._client.pipeline(transaction=True) as pipe:
            pipe.hgetall(self._key(session_id)).lrange(self._turns_key(session_id), 0, -1)
            fields, turns = await pipe.execute()
        if fields.get(b"owner", b"").decode() != owner:
            return None
        return Session(session_id, owner, _system(fields.get(b"system")), _turns(turns))

    async def append(self, session_id: str, owner: str, turn: Turn, system_prompt: str | None) -> Session:
        async with _available():
            turns = await self._append(
                keys=[self._key(session_id), self._turns_key(session_id)],
                args=[owner, json.dumps(system_prompt), json.dumps([turn.user, turn.assistant]), self._max_turns,
                      self._ttl_ms],
            )
        if turns is None:
            raise SessionNotFound()
        return Session(session_id, owner, system_prompt, _turns(turns))

    async def delete(self, session_id: str, owner: str) -> bool:
        async with _available():
            return bool(await self._delete(keys=[self._key(session_id), self._turns_key(session_id)], args=[owner]))

    async def close(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    def _key(self, session_id: str) -> str:
        return f"{self._prefix}{{{session_id}}}"

    def _turns_key(self, session_id: str) -> str:
        return f"{self._prefix}{{{session_id}}}:turns"


@asynccontextmanager
async def _available() -> AsyncIterator[None]:
    try:
        yield
    except RedisError as error:
        raise NotReady(f"session store unavailable ({type(error).__name__})") from error


def _system(raw: bytes | None) -> str | None:
    return json.loads(raw) if raw else None


def _turns(raw: list[bytes]) -> tuple[Turn, ...]:
    return tuple(Turn(*json.loads(item)) for item in raw)
