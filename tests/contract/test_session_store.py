"""One contract for the conversation session store, run in-process and on Redis."""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from libs.errors import NotReady
from libs.stores.redis_sessions import RedisSessionStore
from libs.stores.sessions import InMemorySessionStore, SessionStore, Turn, new_session_id
from tests.support.ports import free_ports
from tests.support.redis_server import isolated_redis

UNICODE = "Naïve café 🩺 病院\n\"quoted\" \\ back"


@asynccontextmanager
async def session_store(kind: str, *, ttl_seconds: float = 60, max_turns: int = 10) -> AsyncIterator[SessionStore]:
    if kind == "memory":
        store = InMemorySessionStore(ttl_seconds, max_turns)
        yield store
        await store.close()
        return
    async with isolated_redis() as (client, prefix):
        yield RedisSessionStore(client, ttl_seconds, max_turns, prefix)


BACKENDS = ["memory", pytest.param("redis", marks=pytest.mark.redis)]


@pytest.fixture(params=BACKENDS)
def kind(request) -> str:
    return request.param


def turn(number: int) -> Turn:
    return Turn(f"question {number}", f"answer {number}")


async def test_turns_accumulate_and_only_the_owner_sees_them(kind):
    async with session_store(kind) as store:
        session_id = new_session_id()
        assert await store.get(session_id, "alice") is None
        await store.append(session_id, "alice", turn(1), "Be brief.")
        session = await store.append(session_id, "alice", turn(2), "Be brief.")
        assert (session.session_id, session.owner, session.system_prompt) == (session_id, "alice", "Be brief.")
        assert session.turns == (turn(1), turn(2))
        assert await store.get(session_id, "alice") == session
        assert await store.get(session_id, "mallory") is None


async def test_the_same_name_is_another_owners_own_session(kind):
    async with session_store(kind) as store:
        session_id = "visit-2026.11.30_a"  # a name a client chose
        await store.append(session_id, "alice", turn(1), None)
        assert not await store.delete(session_id, "mallory")
        theirs = await store.append(session_id, "mallory", turn(2), None)
        assert (theirs.owner, theirs.turns) == ("mallory", (turn(2),))  # never alice's history
        assert (await store.get(session_id, "alice")).turns == (turn(1),)
        assert await store.delete(session_id, "mallory")
        assert (await store.get(session_id, "alice")).turns == (turn(1),)


async def test_only_the_newest_turns_are_kept(kind):
    async with session_store(kind, max_turns=2) as store:
        session_id = new_session_id()
        for number in range(1, 5):
            session = await store.append(session_id, "alice", turn(number), None)
        assert session.turns == (turn(3), turn(4))
        assert (await store.get(session_id, "alice")).turns == (turn(3), turn(4))


async def test_text_and_system_prompt_round_trip_exactly(kind):
    async with session_store(kind) as store:
        session_id = new_session_id()
        await store.append(session_id, "alice", Turn(UNICODE, ""), None)
        session = await store.get(session_id, "alice")
        assert session.turns == (Turn(UNICODE, ""),) and session.system_prompt is None
        session = await store.append(session_id, "alice", turn(2), UNICODE)
        assert session.system_prompt == UNICODE and (await store.get(session_id, "alice")).system_prompt == UNICODE


async def test_delete(kind):
    async with session_store(kind) as store:
        session_id = new_session_id()
        await store.append(session_id, "alice", turn(1), None)
        assert await store.delete(session_id, "alice")
        assert await store.get(session_id, "alice") is None
        assert not await store.delete(session_id, "alice")
        assert (await store.append(session_id, "bob", turn(2), None)).turns == (turn(2),)  # the id is free again


async def test_concurrent_turns_are_all_kept(kind):
    async with session_store(kind, max_turns=50) as store:
        session_id = new_session_id()
        await asyncio.gather(*(store.append(session_id, "alice", turn(number), None) for number in range(20)))
        assert sorted((await store.get(session_id, "alice")).turns, key=lambda t: int(t.user.split()[1])) == \
            [turn(number) for number in range(20)]


async def test_sessions_expire(kind):
    async with session_store(kind, ttl_seconds=0.3) as store:
        session_id = new_session_id()
        await store.append(session_id, "alice", turn(1), None)
        deadline = time.monotonic() + 10
        while await store.get(session_id, "alice") is not None:
            assert time.monotonic() < deadline, "the session did not expire"
            await asyncio.sleep(0.05)
        assert (await store.append(session_id, "alice", turn(2), None)).turns == (turn(2),)  # starts afresh


@pytest.mark.redis
async def test_redis_renews_the_ttl_on_each_turn():
    async with isolated_redis() as (client, prefix):
        store = RedisSessionStore(client, 100, 10, prefix)
        session_id = new_session_id()
        await store.append(session_id, "alice", turn(1), None)
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        assert len(keys) == 2 and all(90_000 < ttl <= 100_000 for ttl in [await client.pttl(key) for key in keys])
        for key in keys:
            await client.pexpire(key, 5_000)
        await store.append(session_id, "alice", turn(2), None)
        assert all(ttl > 90_000 for ttl in [await client.pttl(key) for key in keys])


async def test_redis_down_is_a_clear_not_ready():
    port = free_ports(1)[0]  # nothing listens there
    store = RedisSessionStore.from_url(f"redis://127.0.0.1:{port}/0", 60, 10)
    try:
        for call in (store.get("s", "alice"), store.append("s", "alice", turn(1), None), store.delete("s", "alice")):
            with pytest.raises(NotReady, match="session store unavailable"):
                await call
    finally:
        await store.close()
