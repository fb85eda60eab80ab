"""Envoy -> gateway -> compliance -> spy worker, every one a real server: the response cache seen from a
client, per-key rate limits answering 429 with a retry hint, deadlines reaching the worker as the
client's remaining time, and validation before any work."""
from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import grpc
import httpx
import pytest

from medai.common.v1 import inference_pb2, models_pb2
from medai.gateway.v1 import gateway_pb2_grpc
from tests.support.edge_stack import BURST, GATEWAY_MAX_BYTES, GENERATION_DEADLINE, edge_stack
from tests.support.spy_worker import GEN_MODEL

PHI = ("Mary Major", "536-22-8145")
NOTE = "Patient Mary Major, SSN 536-22-8145, is short of breath."
ROOT = Path(__file__).resolve().parents[2]


def bearer(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


def headers_md(headers: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(headers.items())


def body(**parameters) -> dict:
    return {"inputs": NOTE, "parameters": {"max_new_tokens": 8, **parameters}}


async def test_cached_answers_through_the_edge(tmp_path, presidio_deidentifier):
    async with edge_stack(tmp_path, presidio_deidentifier) as stack, httpx.AsyncClient(timeout=30) as http:
        headers = {"authorization": f"Bearer {await stack.new_key()}"}
        url = f"{stack.base_url}/models/{GEN_MODEL}/predict"
        greedy = [await http.post(url, json=body(temperature=0), headers=headers) for _ in range(2)]
        assert [answer.status_code for answer in greedy] == [200, 200]
        first, second = (answer.json() for answer in greedy)
        assert (first["metadata"]["cached"], second["metadata"]["cached"]) == (False, True)
        assert second["outputs"] == first["outputs"]
        assert second["request_id"] == greedy[1].headers["x-request-id"] != first["request_id"]
        assert len(stack.spy.state.requests("Generate")) == 1

        sampled = [(await http.post(url, json=body(temperature=0.9), headers=headers)).json() for _ in range(2)]
        assert [answer["metadata"]["cached"] for answer in sampled] == [False, False]
        assert len(stack.spy.state.requests("Generate")) == 3
        assert not [value for value in PHI for answer in (*greedy,) if value in answer.text]


async def test_rate_limit_answers_429_with_a_retry_hint(tmp_path, presidio_deidentifier):
    async with edge_stack(tmp_path, presidio_deidentifier) as stack, httpx.AsyncClient(timeout=30) as http:
        key, other = await stack.new_key(rpm=BURST), await stack.new_key(rpm=BURST)
        answers = [await http.get(f"{stack.base_url}/models", headers={"authorization": f"Bearer {key}"})
                   for _ in range(BURST + 1)]
        assert [answer.status_code for answer in answers] == [200] * BURST + [429]
        refused = answers[-1]
        assert refused.json()["code"] == 8 and "requests per minute" in refused.json()["message"]
        assert 1 <= int(refused.headers["retry-after"]) <= 60

        async with grpc.aio.insecure_channel(stack.grpc_target) as channel:
            stub = gateway_pb2_grpc.GatewayStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await stub.ListModels(models_pb2.ListModelsRequest(), metadata=bearer(key), timeout=10)
            assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert dict(raised.value.trailing_metadata())["retry-after"].isdigit()
            await stub.ListModels(models_pb2.ListModelsRequest(), metadata=bearer(other), timeout=10)


async def test_the_worker_sees_the_client_remaining_time(tmp_path, presidio_deidentifier):
    async with edge_stack(tmp_path, presidio_deidentifier) as stack:
        key = await stack.new_key()
        request = inference_pb2.PredictRequest(model_id=GEN_MODEL, parameters={"temperature": 0.7})
        request.inputs.string_value = NOTE
        async with grpc.aio.insecure_channel(stack.grpc_target) as channel:
            stub = gateway_pb2_grpc.GatewayStub(channel)
            await stub.Predict(request, metadata=bearer(key), timeout=7)
            await stub.Predict(request, metadata=bearer(key))  # no deadline: the model type's default
        with_deadline, without = (call.time_remaining for call in stack.spy.state.calls if call.method == "Generate")
        # gRPC rounds each hop's grpc-timeout up a little (to two significant digits): allow 1 s.
        assert 0 < with_deadline <= 7 + 1
        assert 7 + 1 < without <= GENERATION_DEADLINE + 1  # not the general 120 s default


async def test_bad_input_is_refused_at_the_gateway_before_any_work(tmp_path, presidio_deidentifier):
    async with edge_stack(tmp_path, presidio_deidentifier) as stack, httpx.AsyncClient(timeout=30) as http:
        headers = {"authorization": f"Bearer {await stack.new_key()}"}
        url = f"{stack.base_url}/models/{GEN_MODEL}/predict"
        cases = {
            "parameters.max_new_tokens": body(max_new_tokens=65),  # over the spy model's limit of 64
            "parameters.temperature": body(temperature=9),
            "session_id": {**body(), "session_id": "Mary Major"},
        }
        for field, payload in cases.items():
            answer = await http.post(url, json=payload, headers=headers)
            assert answer.status_code == 400, answer.text
            assert answer.json()["message"].startswith(f"{field}:")
            assert not [value for value in PHI if value in answer.text]
        assert stack.spy.state.requests("Generate") == []

        big = inference_pb2.PredictRequest(model_id=GEN_MODEL)  # native gRPC: the gateway checks the size
        big.inputs.string_value = "Mary Major " * 10_000
        async with grpc.aio.insecure_channel(stack.grpc_target) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await gateway_pb2_grpc.GatewayStub(channel).Predict(big, metadata=headers_md(headers), timeout=30)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert raised.value.details() == f"request: larger than {GATEWAY_MAX_BYTES} bytes"


async def test_cli_through_the_edge(tmp_path, presidio_deidentifier):
    async with edge_stack(tmp_path, presidio_deidentifier) as stack:
        env = {**os.environ, "MEDAI_ADDRESS": stack.grpc_target, "MEDAI_API_KEY": await stack.new_key(),
               "PYTHONPATH": str(ROOT)}

        async def medai(*args: str) -> tuple[int, str]:
            process = await asyncio.create_subprocess_exec(sys.executable, "-m", "libs.cli", *args, cwd=ROOT, env=env,
                                                           stdout=asyncio.subprocess.PIPE)
            out, _ = await asyncio.wait_for(process.communicate(), 60)
            return process.returncode, out.decode()

        code, listing = await medai("models")
        assert code == 0 and GEN_MODEL in listing and "text-generation" in listing
        code, streamed = await medai("predict", GEN_MODEL, NOTE, "--stream", "--max-new-tokens", "8")
        assert (code, streamed) == (0, stack.spy.state.reply + "\n")
