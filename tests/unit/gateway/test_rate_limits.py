"""Per-key rate limits at the gateway: requests and generated tokens per minute, on Redis and in-process,
and in-process limits when Redis stops answering mid-test."""
from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from libs.errors import Overloaded
from libs.stores.keys import KeyLimits
from libs.stores.ratelimit import FallbackRateLimitStore, InMemoryRateLimitStore, RedisRateLimitStore
from libs.stores.redis_client import open_redis
from libs.validation import GenerationParams
from services.gateway.core.model import PredictCall, RateLimits
from services.gateway.core.quota import Quotas
from services.gateway.metrics import RATE_LIMITED
from tests.support.redis_proxy import proxied_url, redis_proxy
from tests.support.redis_server import isolated_redis
from tests.unit.gateway.conftest import build_gateway, meta

# A minute's worth at once, then one unit every 20 s (requests) or 6 s (tokens): nothing refills while a test runs.
THREE_REQUESTS = KeyLimits(requests_per_minute=3)
TEN_TOKENS = KeyLimits(tokens_per_minute=10)


async def limited_key(key_store, limits: KeyLimits, role: str = "admin") -> str:
    _, plaintext = await key_store.create(name="t", role=role, limits=limits)
    return plaintext


def predict(model_id: str = "gen-1") -> PredictCall:
    return PredictCall(model_id=model_id, inputs="chest pain", params=GenerationParams(temperature=0))


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def limiter_store(request) -> AsyncIterator[object]:
    if request.param == "memory":
        yield InMemoryRateLimitStore()
        return
    async with isolated_redis() as (client, prefix):
        yield RedisRateLimitStore(client, prefix)


async def predicts_admitted(gateway, key: str, attempts: int, model_id: str = "gen-1") -> int:
    admitted = 0
    for _ in range(attempts):
        try:
            await gateway.predict(meta(key), predict(model_id))
            admitted += 1
        except Overloaded:
            pass
    return admitted


async def test_requests_beyond_the_key_limit_are_refused_with_a_retry_hint(key_store, compliance, limiter_store):
    gateway = build_gateway(key_store, compliance, quotas=Quotas(limiter_store))
    _, key = await key_store.create(name="t", role="admin", limits=THREE_REQUESTS)
    _, other = await key_store.create(name="u", role="admin", limits=THREE_REQUESTS)
    refused_before = RATE_LIMITED.labels("requests")._value.get()
    assert await predicts_admitted(gateway, key, 3) == 3
    with pytest.raises(Overloaded, match="requests per minute") as raised:
        await gateway.predict(meta(key), predict())
    assert 0 < raised.value.retry_after_seconds <= 60
    assert len(compliance.calls) == 3  # the refused call did no work
    assert RATE_LIMITED.labels("requests")._value.get() == refused_before + 1
    assert await predicts_admitted(gateway, other, 3) == 3  # another key has its own budget


async def test_every_authenticated_route_counts(key_store, compliance, limiter_store):
    gateway = build_gateway(key_store, compliance, quotas=Quotas(limiter_store))
    _, key = await key_store.create(name="t", role="admin", limits=THREE_REQUESTS)
    await gateway.list_models(meta(key), "")
    await gateway.model_info(meta(key), "gen-1")
    await gateway.deidentify(meta(key), "Jane Roe")
    with pytest.raises(Overloaded):
        await gateway.list_models(meta(key), "")
    await gateway.health()  # unauthenticated routes are not limited per key


async def test_generated_tokens_spend_the_token_budget(key_store, compliance, limiter_store):
    gateway = build_gateway(key_store, compliance, quotas=Quotas(limiter_store))
    _, key = await key_store.create(name="t", role="admin", limits=TEN_TOKENS)
    compliance.tokens = 25
    await gateway.predict(meta(key), predict())  # admitted in budget; it generated 15 over the allowance
    with pytest.raises(Overloaded, match="generated tokens per minute") as raised:
        await gateway.predict(meta(key), predict())
    assert 60 < raised.value.retry_after_seconds <= 90  # 15 tokens over, at 6 s a token
    with pytest.raises(Overloaded):
        async for _ in gateway.predict_stream(meta(key), predict("chat-1")):
            pass
    await gateway.predict(meta(key), predict("emb-1"))  # embeddings generate no tokens
    assert [name for name, _ in compliance.calls] == ["predict", "predict"]


async def test_cached_answers_generate_no_tokens(key_store, compliance):
    gateway = build_gateway(key_store, compliance, quotas=Quotas(InMemoryRateLimitStore()))
    _, key = await key_store.create(name="t", role="admin", limits=TEN_TOKENS)
    compliance.tokens, compliance.cached = 25, True
    for _ in range(3):
        await gateway.predict(meta(key), predict())


@pytest.mark.parametrize(("texts", "usage", "spent"), [
    (("a",) * 8, 11, True),   # the last chunk's usage counts: 11 > 10
    (("a",) * 8, 9, False),
    (("a",) * 11, None, True),  # no usage (stream cut short): one token per chunk
])
async def test_streams_spend_their_reported_usage(key_store, compliance, texts, usage, spent):
    gateway = build_gateway(key_store, compliance, quotas=Quotas(InMemoryRateLimitStore()))
    _, key = await key_store.create(name="t", role="admin", limits=TEN_TOKENS)
    compliance.stream_texts, compliance.stream_usage = texts, usage
    async for _ in gateway.predict_stream(meta(key), predict()):
        pass
    if spent:
        with pytest.raises(Overloaded):
            await gateway.predict(meta(key), predict())
    else:
        await gateway.predict(meta(key), predict())


async def test_a_stream_closed_early_spends_what_it_sent(key_store, compliance):
    gateway = build_gateway(key_store, compliance, quotas=Quotas(InMemoryRateLimitStore()))
    _, key = await key_store.create(name="t", role="admin", limits=TEN_TOKENS)
    compliance.stream_texts = ("a",) * 20
    stream = gateway.predict_stream(meta(key), predict())
    for _ in range(12):
        await stream.__anext__()
    await stream.aclose()  # the client went away after 12 chunks
    with pytest.raises(Overloaded):
        await gateway.predict(meta(key), predict())


@pytest.mark.redis
async def test_limits_hold_in_process_when_redis_stops_answering(key_store, compliance):
    async with isolated_redis() as (client, prefix), redis_proxy() as proxy:
        remote = open_redis(proxied_url(proxy))
        store = FallbackRateLimitStore(RedisRateLimitStore(remote, prefix), InMemoryRateLimitStore())
        gateway = build_gateway(key_store, compliance, quotas=Quotas(store))
        _, key = await key_store.create(name="t", role="admin", limits=THREE_REQUESTS)
        try:
            assert await predicts_admitted(gateway, key, 2) == 2
            assert [k async for k in client.scan_iter(match=f"{prefix}req:*")]  # counted in Redis
            await proxy.stop()
            assert await predicts_admitted(gateway, key, 5) == 3  # answered, and limited in-process
            assert store.degraded
        finally:
            await remote.aclose()


async def test_a_key_without_limits_is_not_rate_limited(key_store, compliance):
    gateway = build_gateway(key_store, compliance, quotas=Quotas(InMemoryRateLimitStore()))
    _, key = await key_store.create(name="unlimited", role="admin")
    assert await predicts_admitted(gateway, key, 250) == 250


async def test_role_defaults_apply_to_keys_without_their_own(key_store, compliance):
    defaults = {"researcher": RateLimits(requests_per_minute=2)}
    gateway = build_gateway(key_store, compliance, quotas=Quotas(InMemoryRateLimitStore()),
                            role_limits=lambda role: defaults.get(role, RateLimits()))
    _, researcher = await key_store.create(name="r", role="researcher")
    _, own = await key_store.create(name="o", role="researcher", limits=KeyLimits(requests_per_minute=4))
    _, admin = await key_store.create(name="a", role="admin")
    assert await predicts_admitted(gateway, researcher, 5) == 2
    assert await predicts_admitted(gateway, own, 6) == 4  # the key's own limit wins over the role's
    assert await predicts_admitted(gateway, admin, 6) == 6  # no role default: not limited


async def test_updated_limits_take_effect(key_store, compliance):
    gateway = build_gateway(key_store, compliance, quotas=Quotas(InMemoryRateLimitStore()))
    key, plaintext = await key_store.create(name="t", role="admin")
    assert await key_store.update_limits(key.key_id, {"rpm": 2})
    assert await predicts_admitted(gateway, plaintext, 4) == 2
    assert not await key_store.update_limits("000000000000", {"rpm": 2})
