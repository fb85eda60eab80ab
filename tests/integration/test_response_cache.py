"""The response cache in compliance, after de-identification, over real gRPC servers (spy worker, Presidio):
hits answer without a worker call and say `cached`, sampled calls are never cached, and the store holds
no PHI, in-process and on Redis; a cache store that stops answering only costs misses."""
from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from google.protobuf import json_format, struct_pb2

from libs.stores.cache import InMemoryCacheStore, RedisCacheStore
from libs.stores.redis_client import open_redis
from medai.common.v1 import inference_pb2
from medai.compliance.v1 import compliance_pb2
from services.compliance.core.cache import CACHE_ERRORS, CACHE_HITS, CACHE_MISSES
from tests.fixtures.compliance import running_compliance
from tests.support.redis_proxy import proxied_url, redis_proxy
from tests.support.redis_server import isolated_redis
from tests.support.spy_worker import CHAT_MODEL, EMB_MODEL, GEN_MODEL, running_spy

PHI = ("John Smith", "Smith", "617-555-0123", "536-22-8145", "Mary Jones", "Jones", "212-555-0199")
NOTE = "Patient John Smith, phone 617-555-0123, SSN 536-22-8145, reports chest pain."
OTHER_PATIENT = "Patient Mary Jones, phone 212-555-0199, SSN 536-22-8145, reports chest pain."
CALLER = inference_pb2.Caller(request_id="req-1", principal_id="key-1", role="clinician")
GREEDY = {"temperature": 0.0, "max_new_tokens": 8}


def request(model_id: str, inputs, **parameters) -> compliance_pb2.ProxyPredictRequest:
    message = inference_pb2.PredictRequest(model_id=model_id, parameters=inference_pb2.PredictParameters(**parameters))
    message.inputs.CopyFrom(json_format.ParseDict(inputs, struct_pb2.Value()))
    return compliance_pb2.ProxyPredictRequest(caller=CALLER, request=message)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def cache_store(request) -> AsyncIterator[tuple[object, callable]]:
    """(store, contents()) where contents lists every key and value the store holds, as bytes."""
    if request.param == "memory":
        store = InMemoryCacheStore(60, 100)

        async def memory_contents() -> list[bytes]:
            return [item for key, (_, value) in store._entries.items() for item in (key.encode(), value)]

        yield store, memory_contents
        return
    async with isolated_redis() as (client, prefix):
        async def redis_contents() -> list[bytes]:
            keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
            values = [await client.get(key) for key in keys if not key.endswith(b"index")]
            members = await client.zrange(f"{prefix}index", 0, -1)
            return [*keys, *values, *members]

        yield RedisCacheStore(client, 60, 100, prefix), redis_contents


@pytest.fixture
async def spy():
    async with running_spy() as worker:
        worker.state.reply = "Rest, fluids, and follow up with John Smith."  # generated PHI, redacted before caching
        yield worker


@pytest.fixture
async def service(spy, presidio_deidentifier, cache_store):
    async with running_compliance([spy.address], presidio_deidentifier, cache_store=cache_store[0]) as compliance:
        yield compliance


async def test_a_repeated_greedy_call_is_answered_from_the_cache(service, spy):
    hits = CACHE_HITS.labels(GEN_MODEL)._value.get()
    first = await service.stub.Predict(request(GEN_MODEL, NOTE, **GREEDY), timeout=30)
    second = await service.stub.Predict(request(GEN_MODEL, NOTE, **GREEDY), timeout=30)
    assert (first.metadata.cached, second.metadata.cached) == (False, True)
    assert second.outputs == first.outputs
    assert second.metadata.tokens_generated == first.metadata.tokens_generated
    assert second.request_id == first.request_id == "req-1"
    assert len(spy.state.requests("Generate")) == 1  # the hit made no worker call
    assert CACHE_HITS.labels(GEN_MODEL)._value.get() == hits + 1


async def test_the_key_is_the_redacted_input(service, spy):
    await service.stub.Predict(request(GEN_MODEL, NOTE, **GREEDY), timeout=30)
    other = await service.stub.Predict(request(GEN_MODEL, OTHER_PATIENT, **GREEDY), timeout=30)
    assert other.metadata.cached  # another patient, the same de-identified text
    assert len(spy.state.requests("Generate")) == 1
    changed = await service.stub.Predict(request(GEN_MODEL, NOTE, temperature=0.0, max_new_tokens=9), timeout=30)
    assert not changed.metadata.cached  # other parameters, another key


async def test_seeded_sampling_is_cached_unseeded_sampling_never(service, spy):
    misses = CACHE_MISSES.labels(GEN_MODEL)._value.get()
    sampled = [await service.stub.Predict(request(GEN_MODEL, NOTE, temperature=0.8), timeout=30) for _ in range(2)]
    assert [answer.metadata.cached for answer in sampled] == [False, False]
    assert CACHE_MISSES.labels(GEN_MODEL)._value.get() == misses  # not even looked up
    seeded = [await service.stub.Predict(request(GEN_MODEL, NOTE, temperature=0.8, seed=7), timeout=30)
              for _ in range(2)]
    assert [answer.metadata.cached for answer in seeded] == [False, True]
    assert len(spy.state.requests("Generate")) == 3


async def test_embeddings_are_cached_and_conversations_never(service, spy):
    inputs = [NOTE, "headache"]
    vectors = [await service.stub.Predict(request(EMB_MODEL, inputs), timeout=30) for _ in range(2)]
    assert [answer.metadata.cached for answer in vectors] == [False, True]
    assert vectors[1].outputs == vectors[0].outputs
    assert len(spy.state.requests("Embed")) == 1
    chats = [await service.stub.Predict(request(CHAT_MODEL, NOTE, **GREEDY), timeout=30) for _ in range(2)]
    assert [answer.metadata.cached for answer in chats] == [False, False]


async def test_cache_contents_hold_none_of_the_phi_sent(service, spy, cache_store):
    _, contents = cache_store
    for text in (NOTE, OTHER_PATIENT):
        await service.stub.Predict(request(GEN_MODEL, text, **GREEDY), timeout=30)
        await service.stub.Predict(request(EMB_MODEL, [text]), timeout=30)
    stored = await contents()
    assert len(stored) >= 4
    blob = b"\n".join(stored)
    for value in PHI:
        assert value.encode() not in blob
    assert b"[PERSON_" in blob  # the de-identified answer is what was cached


async def test_generated_text_is_not_cached_without_output_redaction(spy, presidio_deidentifier):
    store = InMemoryCacheStore(60, 100)
    async with running_compliance([spy.address], presidio_deidentifier, cache_store=store,
                                  redact_outputs=False) as service:
        answers = [await service.stub.Predict(request(GEN_MODEL, NOTE, **GREEDY), timeout=30) for _ in range(2)]
        assert [answer.metadata.cached for answer in answers] == [False, False]
        await service.stub.Predict(request(EMB_MODEL, [NOTE]), timeout=30)
        assert len(store) == 1  # the embedding only


@pytest.mark.redis
async def test_a_cache_store_that_stops_answering_costs_only_misses(spy, presidio_deidentifier):
    async with isolated_redis() as (_, prefix), redis_proxy() as proxy:
        store = RedisCacheStore(open_redis(proxied_url(proxy)), 60, 100, prefix)
        async with running_compliance([spy.address], presidio_deidentifier, cache_store=store) as service:
            await service.stub.Predict(request(GEN_MODEL, NOTE, **GREEDY), timeout=30)
            assert (await service.stub.Predict(request(GEN_MODEL, NOTE, **GREEDY), timeout=30)).metadata.cached
            errors = CACHE_ERRORS.labels("get")._value.get()
            await proxy.stop()
            answers = [await service.stub.Predict(request(GEN_MODEL, NOTE, **GREEDY), timeout=30) for _ in range(3)]
            assert [answer.metadata.cached for answer in answers] == [False, False, False]
            assert len(spy.state.requests("Generate")) == 4
            assert CACHE_ERRORS.labels("get")._value.get() == errors + 1  # then left alone for a while
        await store.close()


async def test_cache_off_by_setting(spy, presidio_deidentifier):
    async with running_compliance([spy.address], presidio_deidentifier, cache_enabled=False) as service:
        answers = [await service.stub.Predict(request(GEN_MODEL, NOTE, **GREEDY), timeout=30) for _ in range(2)]
    assert [answer.metadata.cached for answer in answers] == [False, False]
    assert len(spy.state.requests("Generate")) == 2
