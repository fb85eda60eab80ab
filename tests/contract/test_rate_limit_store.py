"""One contract for the rate-limit store (GCRA), run in-process and on Redis; and the fallback from a
Redis that stops answering mid-test to in-process limits, and back."""
from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from libs.stores.ratelimit import (
    RATE_LIMIT_STORE_ERRORS,
    FallbackRateLimitStore,
    InMemoryRateLimitStore,
    Limit,
    RateLimitStore,
    RedisRateLimitStore,
)
from libs.stores.redis_client import open_redis
from tests.support.redis_proxy import proxied_url, redis_proxy
from tests.support.redis_server import isolated_redis

# One unit a minute: nothing refills while a test runs, so counts are exact.
SLOW = Limit(per_minute=1, burst=3)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def store(request) -> AsyncIterator[RateLimitStore]:
    if request.param == "memory":
        yield InMemoryRateLimitStore()
        return
    async with isolated_redis() as (client, prefix):
        yield RedisRateLimitStore(client, prefix)


async def admitted(store: RateLimitStore, key: str, limit: Limit, attempts: int) -> int:
    return sum([(await store.acquire(key, limit)).allowed for _ in range(attempts)])


async def test_burst_is_admitted_then_refused_with_a_wait(store):
    assert await admitted(store, "k", SLOW, 3) == 3
    refused = await store.acquire("k", SLOW)
    assert not refused.allowed
    assert 0 < refused.retry_after_seconds <= 60


async def test_keys_have_their_own_buckets(store):
    assert await admitted(store, "a", SLOW, 5) == 3
    assert await admitted(store, "b", SLOW, 5) == 3


async def test_cost_larger_than_the_burst_is_refused(store):
    assert not (await store.acquire("k", SLOW, cost=4)).allowed
    assert (await store.acquire("k", SLOW, cost=3)).allowed


async def test_charged_usage_puts_the_key_in_debt(store):
    tokens = Limit(per_minute=60, burst=10)  # one token a second, ten at once
    assert (await store.acquire("t", tokens, cost=0)).allowed
    await store.charge("t", tokens, 25)  # known after the work: 15 over the allowance
    refused = await store.acquire("t", tokens, cost=0)
    assert not refused.allowed
    assert 10 < refused.retry_after_seconds <= 15


async def test_a_refused_key_is_admitted_again_once_refilled(store):
    fast = Limit(per_minute=60_000, burst=1)  # refills in a millisecond
    assert (await store.acquire("f", fast)).allowed
    deadline = time.monotonic() + 5
    while not (await store.acquire("f", fast)).allowed:
        assert time.monotonic() < deadline, "never refilled"


async def test_in_process_refill_follows_its_clock():
    now = [100.0]
    store = InMemoryRateLimitStore(clock=lambda: now[0])
    assert await admitted(store, "k", SLOW, 4) == 3
    decision = await store.acquire("k", SLOW)
    assert decision.retry_after_seconds == pytest.approx(60)
    now[0] += 60
    assert await admitted(store, "k", SLOW, 2) == 1


@pytest.mark.redis
async def test_falls_back_in_process_when_redis_stops_answering_and_returns():
    now = [0.0]
    async with isolated_redis() as (client, prefix), redis_proxy() as proxy:
        remote = open_redis(proxied_url(proxy))
        store = FallbackRateLimitStore(RedisRateLimitStore(remote, prefix), InMemoryRateLimitStore(),
                                       retry_seconds=5, clock=lambda: now[0])
        try:
            assert await admitted(store, "k", SLOW, 2) == 2
            assert await client.exists(f"{prefix}k") == 1  # decided in Redis
            errors_before = RATE_LIMIT_STORE_ERRORS._value.get()

            await proxy.stop()  # Redis stops answering mid-test
            assert await admitted(store, "k", SLOW, 5) == 3  # still limited, now in-process
            assert store.degraded
            assert RATE_LIMIT_STORE_ERRORS._value.get() == errors_before + 1

            await proxy.start()
            now[0] += 5  # the retry period has passed: back to Redis, whose bucket holds 2 of 3
            assert await admitted(store, "k", SLOW, 3) == 1
            assert not store.degraded
        finally:
            await remote.aclose()
