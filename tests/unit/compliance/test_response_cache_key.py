"""The response cache key: deterministic calls only, keyed (HMAC) on model, version, parameters and the
redacted texts; and the gRPC target naming several worker replicas."""
from __future__ import annotations

from dataclasses import replace

import numpy
import pytest

from libs.catalog import ModelCard
from libs.validation import GenerationParams
from services.compliance.core.cache import ResponseCache, decode_answer, encode_answer
from services.compliance.core.handlers import Answer, ModelCall
from services.compliance.core.registry import ModelRegistry, Route, replica_target
from services.compliance.core.types import Caller, PredictInput, Usage

PEPPER = b"pepper"


def model_call(model_type: str = "text-generation", texts=("[PERSON_1] has a cough",), version: str = "v1",
               **params) -> ModelCall:
    route = Route("127.0.0.1:1", ModelCard("m", model_type, model_version=version), True)
    request = PredictInput("m", list(texts), GenerationParams(**params))
    return ModelCall(Caller("r"), route, request, list(texts))


def key(call: ModelCall, pepper: bytes = PEPPER) -> str | None:
    return ResponseCache(store=None, pepper=pepper).key_for(call)


@pytest.mark.parametrize(("call", "cacheable"), [
    (model_call(), True),  # temperature unset: greedy
    (model_call(temperature=0.0), True),
    (model_call(temperature=0.7, seed=3), True),
    (model_call(temperature=0.7), False),
    (model_call("embedding"), True),
    (model_call("conversation", temperature=0.0), False),
])
def test_only_deterministic_calls_have_a_key(call, cacheable):
    assert (key(call) is not None) == cacheable


def test_the_key_changes_with_every_part_of_the_call():
    base = model_call(temperature=0.0)
    variants = [
        model_call(temperature=0.0, texts=("[PERSON_1] has a fever",)),
        model_call(temperature=0.0, version="v2"),
        model_call(temperature=0.0, max_new_tokens=9),
        model_call(temperature=0.0, stop=("\n",)),
        model_call("embedding"),
        replace(base, system_prompt="be brief"),
        replace(base, request=replace(base.request, normalize=True)),
    ]
    keys = {key(call) for call in [base, *variants]}
    assert len(keys) == len(variants) + 1
    assert key(model_call(temperature=0.0)) == key(base)  # and is stable


def test_the_key_is_a_keyed_hash_of_redacted_text_only():
    digest = key(model_call())
    assert len(digest) == 64 and "PERSON" not in digest and "cough" not in digest
    assert key(model_call(), pepper=b"other") != digest  # unguessable without the server secret


def test_cached_answers_round_trip():
    answer = Answer(texts=["[PERSON_1] should rest."], usage=Usage(7, 3), finish_reason="stop", model_version="v1")
    assert decode_answer(encode_answer(answer)) == answer
    vectors = Answer(vectors=[[0.5, -1.25]], usage=Usage(2, 0), truncated_inputs=1)
    assert decode_answer(encode_answer(vectors)) == vectors


def test_cached_vectors_are_the_workers_float32_values_exactly():
    worker_values = [float(numpy.float32(x)) for x in numpy.random.default_rng(7).standard_normal(384)]
    answer = Answer(vectors=[worker_values, worker_values[:3]], usage=Usage(9, 0))
    encoded = encode_answer(answer)
    assert decode_answer(encoded) == answer
    assert len(encoded) < 4 * 387 * 2  # packed, not one decimal per number


def test_entries_cached_before_vectors_were_packed_still_decode():
    old = b'{"texts":null,"vectors":[[0.5,-1.25]],"finish_reason":null,"usage":[2,0],"model_version":"",' \
          b'"truncated_inputs":0}'
    assert decode_answer(old).vectors == [[0.5, -1.25]]


@pytest.mark.parametrize(("addresses", "target"), [
    (["127.0.0.1:5001", "127.0.0.1:5002"], "ipv4:127.0.0.1:5001,127.0.0.1:5002"),
    (["localhost:5001", "10.0.0.7:5001"], "ipv4:127.0.0.1:5001,10.0.0.7:5001"),
    (["[::1]:5001", "[fe80::2]:5001"], "ipv6:[::1]:5001,[fe80::2]:5001"),
    (["127.0.0.1:5001", "[::1]:5001"], None),  # two address families: no single target
    (["embedding-0.embedding:50054", "10.0.0.7:5001"], None),  # host names are taken in turn instead
])
def test_replica_target(addresses, target):
    assert replica_target(addresses) == target


class SameModelEverywhere:
    """A catalogue client for which every worker address serves model m."""

    async def list_models(self, address, timeout):
        return [ModelCard("m", "embedding", model_version="v1", status="SERVING")]


async def test_replicas_behind_host_names_are_taken_in_turn():
    registry = ModelRegistry(["emb-a.svc:50054", "emb-b.svc:50054"], SameModelEverywhere(), refresh_seconds=60,
                             timeout_seconds=1)
    await registry.refresh()
    assert [(await registry.route("m")).address for _ in range(4)] == ["emb-a.svc:50054", "emb-b.svc:50054"] * 2
    local = ModelRegistry(["127.0.0.1:1", "127.0.0.1:2"], SameModelEverywhere(), refresh_seconds=60,
                          timeout_seconds=1)
    await local.refresh()
    assert (await local.route("m")).address == "ipv4:127.0.0.1:1,127.0.0.1:2"
