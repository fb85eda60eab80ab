"""One contract for the cache store (TTL, bounded size), run in-process and on Redis."""
from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import pytest

from libs.stores.cache import CacheStore, InMemoryCacheStore, RedisCacheStore
from tests.support.redis_server import isolated_redis

StoreFactory = Callable[[float, int], CacheStore]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def make_store(request) -> AsyncIterator[StoreFactory]:
    if request.param == "memory":
        yield InMemoryCacheStore
        return
    async with isolated_redis() as (client, prefix):
        yield lambda ttl, size: RedisCacheStore(client, ttl, size, prefix)


async def test_get_returns_what_was_set(make_store):
    store = make_store(60, 10)
    assert await store.get("k") is None
    await store.set("k", b"\x00value")
    assert await store.get("k") == b"\x00value"
    await store.set("k", b"new")
    assert await store.get("k") == b"new"


async def test_oldest_entries_beyond_the_size_are_evicted(make_store):
    store = make_store(60, 3)
    names = ["e", "d", "c", "b", "a"]  # stored in this order (not alphabetical)
    for index, name in enumerate(names):
        await store.set(name, str(index).encode())
    assert [await store.get(name) for name in names] == [None, None, b"2", b"3", b"4"]


async def test_entries_expire_after_the_ttl(make_store):
    store = make_store(0.05, 10)
    await store.set("k", b"v")
    deadline = time.monotonic() + 5
    while await store.get("k") is not None:
        assert time.monotonic() < deadline, "entry never expired"


async def test_in_process_ttl_follows_its_clock():
    now = [0.0]
    store = InMemoryCacheStore(10, 10, clock=lambda: now[0])
    await store.set("k", b"v")
    now[0] = 9.9
    assert await store.get("k") == b"v"
    now[0] = 10.0
    assert await store.get("k") is None
    assert len(store) == 0


async def test_in_process_eviction_is_least_recently_used():
    store = InMemoryCacheStore(60, 2)
    await store.set("a", b"1")
    await store.set("b", b"2")
    await store.get("a")
    await store.set("c", b"3")
    assert (await store.get("a"), await store.get("b"), await store.get("c")) == (b"1", None, b"3")
