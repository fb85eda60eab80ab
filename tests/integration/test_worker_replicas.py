"""Several replicas of a worker behind compliance (real gRPC servers): calls are balanced over them,
and idempotent calls (embeddings, catalogue) are retried once on UNAVAILABLE, on the next replica."""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf import json_format, struct_pb2

from medai.common.v1 import inference_pb2, models_pb2
from medai.compliance.v1 import compliance_pb2
from tests.fixtures.compliance import Compliance, running_compliance
from tests.support.spy_worker import EMB_MODEL, GEN_MODEL, SpyWorker, start_spy

CALLER = inference_pb2.Caller(request_id="req-r", principal_id="key-r", role="researcher")
CALLS = 12


def request(model_id: str, inputs) -> compliance_pb2.ProxyPredictRequest:
    message = inference_pb2.PredictRequest(model_id=model_id)
    message.inputs.CopyFrom(json_format.ParseDict(inputs, struct_pb2.Value()))
    message.parameters.temperature = 0.0
    return compliance_pb2.ProxyPredictRequest(caller=CALLER, request=message)


@pytest.fixture
async def replicas() -> AsyncIterator[list[SpyWorker]]:
    workers = [await start_spy(), await start_spy()]
    yield workers
    for worker in workers:
        await worker.stop()


@pytest.fixture
async def compliance(replicas, presidio_deidentifier) -> AsyncIterator[Compliance]:
    # The cache off: every call must reach a worker.
    async with running_compliance([w.address for w in replicas], presidio_deidentifier,
                                  cache_enabled=False) as service:
        yield service


async def embed(compliance: Compliance, index: int) -> inference_pb2.PredictResponse:
    return await compliance.stub.Predict(request(EMB_MODEL, [f"chest pain {index}"]), timeout=30)


async def until_both_called(compliance: Compliance, replicas: list[SpyWorker], timeout: float = 10) -> None:
    """Embed until every replica has answered at least once (channels connect to each replica in turn)."""
    deadline, index = time.monotonic() + timeout, 0
    while not all(worker.state.requests("Embed") for worker in replicas):
        assert time.monotonic() < deadline, "calls never reached every replica"
        await embed(compliance, index)
        index += 1
        await asyncio.sleep(0.01)


async def test_calls_are_balanced_over_the_replicas(compliance, replicas):
    await until_both_called(compliance, replicas)
    before = [len(worker.state.requests("Embed")) for worker in replicas]
    for index in range(CALLS):
        await embed(compliance, index)
    served = [len(worker.state.requests("Embed")) - count for worker, count in zip(replicas, before, strict=True)]
    assert sum(served) == CALLS
    assert min(served) >= CALLS // 4  # round robin: both take a share


async def test_embeddings_are_retried_on_the_next_replica_when_one_is_unavailable(compliance, replicas):
    await until_both_called(compliance, replicas)
    failing, _ = replicas
    failing.state.fail_with = (grpc.StatusCode.UNAVAILABLE, "draining")
    asked = len(failing.state.requests("Embed"))
    answers = [await embed(compliance, index) for index in range(CALLS)]
    assert all(len(answer.outputs.list_value.values) == 1 for answer in answers)
    assert len(failing.state.requests("Embed")) > asked  # it was asked, answered UNAVAILABLE, and the retry won


async def test_generation_is_not_retried(compliance, replicas):
    """Not idempotent: a generation that reached a worker is never sent twice."""
    await until_both_called(compliance, replicas)
    failing, _ = replicas
    failing.state.fail_with = (grpc.StatusCode.UNAVAILABLE, "draining")
    codes = []
    for index in range(CALLS):
        try:
            await compliance.stub.Predict(request(GEN_MODEL, f"cough {index}"), timeout=30)
            codes.append(grpc.StatusCode.OK)
        except grpc.aio.AioRpcError as error:
            codes.append(error.code())
    assert grpc.StatusCode.UNAVAILABLE in codes and grpc.StatusCode.OK in codes


async def test_a_replica_killed_between_calls_costs_no_failed_call(compliance, replicas):
    await until_both_called(compliance, replicas)
    killed, survivor = replicas
    await killed.stop()
    served = len(survivor.state.requests("Embed"))
    answers = [await embed(compliance, index) for index in range(CALLS)]
    assert len(answers) == CALLS
    assert len(survivor.state.requests("Embed")) == served + CALLS
    info = await compliance.catalog.GetModelInfo(models_pb2.GetModelInfoRequest(model_id=EMB_MODEL))
    assert info.model_id == EMB_MODEL
