"""The in-process session store: owner scoping, turn limit, TTL, LRU bound."""
from __future__ import annotations

import pytest

from libs.stores.sessions import InMemorySessionStore, Turn, new_session_id


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def turn(number: int) -> Turn:
    return Turn(f"question {number}", f"answer {number}")


async def test_turns_accumulate_and_only_the_owner_sees_them(clock):
    store = InMemorySessionStore(ttl_seconds=60, max_turns=10, clock=clock)
    session_id = new_session_id()
    assert await store.get(session_id, "alice") is None
    await store.append(session_id, "alice", turn(1), "Be brief.")
    session = await store.append(session_id, "alice", turn(2), "Be brief.")
    assert session.turns == (turn(1), turn(2)) and session.system_prompt == "Be brief."
    assert await store.get(session_id, "alice") == session
    assert await store.get(session_id, "mallory") is None
    assert (await store.append(session_id, "mallory", turn(3), None)).turns == (turn(3),)  # mallory's own
    assert await store.delete(session_id, "mallory")
    assert not await store.delete(session_id, "mallory")
    assert (await store.get(session_id, "alice")).turns == (turn(1), turn(2))


async def test_only_the_newest_turns_are_kept(clock):
    store = InMemorySessionStore(ttl_seconds=60, max_turns=2, clock=clock)
    for number in range(1, 5):
        session = await store.append("s", "alice", turn(number), None)
    assert session.turns == (turn(3), turn(4))


async def test_sessions_expire_and_each_turn_renews_them(clock):
    store = InMemorySessionStore(ttl_seconds=60, max_turns=5, clock=clock)
    await store.append("s", "alice", turn(1), None)
    clock.now += 59
    await store.append("s", "alice", turn(2), None)
    clock.now += 59
    assert len((await store.get("s", "alice")).turns) == 2
    clock.now += 1
    assert await store.get("s", "alice") is None
    assert (await store.append("s", "alice", turn(3), None)).turns == (turn(3),)  # starts afresh


async def test_delete(clock):
    store = InMemorySessionStore(ttl_seconds=60, max_turns=5, clock=clock)
    await store.append("s", "alice", turn(1), None)
    assert await store.delete("s", "alice")
    assert await store.get("s", "alice") is None
    assert not await store.delete("s", "alice")


async def test_least_recently_used_sessions_are_dropped_beyond_the_bound(clock):
    store = InMemorySessionStore(ttl_seconds=60, max_turns=5, max_sessions=2, clock=clock)
    for name in ("a", "b", "c"):
        await store.append(name, "alice", turn(1), None)
    assert await store.get("a", "alice") is None
    assert await store.get("b", "alice") is not None and await store.get("c", "alice") is not None


def test_session_ids_are_random_hex():
    ids = {new_session_id() for _ in range(100)}
    assert len(ids) == 100 and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
