"""The generation worker through a real gRPC server: generation, streaming, limits, errors, health."""
from __future__ import annotations

import asyncio
import math

import grpc
import pytest
from grpc_health.v1 import health_pb2
from prometheus_client import REGISTRY

from medai.common.v1 import models_pb2
from medai.generation.v1 import generation_pb2
from tests.fixtures.llm_workers import PHI, eventually, health_status, wait_serving
from tests.fixtures.llm_workers import generate_request as request
from tests.unit.generation.conftest import tiny_worker

LONG = 4000  # tokens: seconds of decoding for the tiny model (unless cancelled)


async def collect(stream) -> list[generation_pb2.GenerateChunk]:
    return [chunk async for chunk in stream]


async def test_greedy_generate_reports_text_finish_reason_and_usage(worker):
    response = await worker.generate("The patient reports", max_new_tokens=12)
    assert response.text
    assert response.finish_reason == "length"
    assert response.usage.generated_tokens == 12
    assert response.usage.prompt_tokens > 0
    assert response.usage.total_tokens == response.usage.prompt_tokens + 12
    assert response.model_version == "main"
    again = await worker.generate("The patient reports", max_new_tokens=12)
    assert again.text == response.text


async def test_stream_equals_unary_greedy(worker):
    unary = await worker.generate("Follow up in two weeks", max_new_tokens=40)
    chunks = await collect(worker.generation.GenerateStream(request("Follow up in two weeks", max_new_tokens=40)))
    assert "".join(chunk.text for chunk in chunks) == unary.text
    assert [chunk.index for chunk in chunks] == sorted({chunk.index for chunk in chunks})
    assert [chunk.HasField("finish_reason") for chunk in chunks] == [False] * (len(chunks) - 1) + [True]
    assert chunks[-1].finish_reason == unary.finish_reason == "length"
    assert chunks[-1].usage == unary.usage
    assert len(chunks) > 2


async def test_seeded_sampling_is_reproducible(worker):
    parameters = {"max_new_tokens": 20, "temperature": 1.2, "top_k": 50, "top_p": 0.95, "repetition_penalty": 1.2}
    first = await worker.generate("hello world", seed=7, **parameters)
    second = await worker.generate("hello world", seed=7, **parameters)
    assert first.text == second.text
    assert first.usage.generated_tokens == second.usage.generated_tokens


async def test_stop_string_ends_generation_and_is_not_returned(worker):
    prompt = "Follow up in two weeks"
    full = (await worker.generate(prompt, max_new_tokens=40)).text
    # the last position where a 2-character string occurs for the first time
    position = max(i for i in range(1, len(full) - 1) if full.find(full[i:i + 2]) == i)
    stop = full[position:position + 2]
    unary = await worker.generate(prompt, max_new_tokens=40, stop=[stop, "never-seen"])
    assert (unary.text, unary.finish_reason) == (full[:position], "stop_sequence")
    chunks = await collect(worker.generation.GenerateStream(request(prompt, max_new_tokens=40, stop=[stop])))
    assert "".join(chunk.text for chunk in chunks) == full[:position]
    assert chunks[-1].finish_reason == "stop_sequence"


BAD_PARAMETERS = [
    ("max_new_tokens", {"max_new_tokens": 0}),
    ("max_new_tokens", {"max_new_tokens": 4001}),
    ("temperature", {"temperature": -0.1}),
    ("temperature", {"temperature": 2.5}),
    ("temperature", {"temperature": math.nan}),
    ("top_p", {"top_p": 0.0}),
    ("top_p", {"top_p": 1.5}),
    ("repetition_penalty", {"repetition_penalty": 0.0}),
    ("repetition_penalty", {"repetition_penalty": math.inf}),
    ("stop", {"stop": ["a", "b", "c", "d", "e"]}),
    ("stop", {"stop": [""]}),
    ("stop", {"stop": ["x" * 65]}),
]


@pytest.mark.parametrize(("field", "parameters"), BAD_PARAMETERS, ids=[f"{f}-{i}" for i, (f, _) in
                                                                        enumerate(BAD_PARAMETERS)])
async def test_bad_parameter_is_invalid_argument_naming_the_field(worker, field, parameters):
    for call in (worker.generation.Generate, lambda r: collect(worker.generation.GenerateStream(r))):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(request(PHI, **parameters))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert f"parameters.{field}" in caught.value.details()
        assert PHI not in caught.value.details()


EXTREME_VALID_PARAMETERS = [
    {"temperature": 1e-300},  # scores overflow to infinities: the limit is greedy
    {"temperature": 0.5, "repetition_penalty": 1e-300},
    {"repetition_penalty": 1e300},
    {"temperature": 2.0, "top_k": 2**32 - 1, "top_p": 1e-300},
    {"temperature": 1.0, "seed": -(2**63)},
    {"temperature": 1.0, "seed": 2**63 - 1},
]


@pytest.mark.parametrize("parameters", EXTREME_VALID_PARAMETERS, ids=range(len(EXTREME_VALID_PARAMETERS)))
async def test_extreme_valid_parameters_generate(worker, parameters):
    for call in (worker.generation.Generate, lambda r: collect(worker.generation.GenerateStream(r))):
        await call(request("hello", max_new_tokens=5, **parameters))  # no INTERNAL, whatever the numbers


async def test_a_temperature_near_zero_is_greedy(worker):
    greedy = await worker.generate("Blood pressure", max_new_tokens=20)
    assert (await worker.generate("Blood pressure", max_new_tokens=20, temperature=1e-300)).text == greedy.text


@pytest.mark.parametrize("prompt", ["", "   "])
async def test_empty_prompt_is_invalid_argument(worker, prompt):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await worker.generate(prompt)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "inputs" in caught.value.details()


async def test_prompt_longer_than_the_context_window_is_invalid_argument(worker):
    prompt = f"{PHI} hello world " * 500
    for call in (worker.generation.Generate, lambda r: collect(worker.generation.GenerateStream(r))):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(request(prompt))
        details = caught.value.details()
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert details.startswith("inputs:") and "at most 4095" in details and "tokens" in details
        assert PHI not in details


async def test_generation_is_bounded_by_the_context_window(worker):
    response = await worker.generate("hello world " * 800, max_new_tokens=1000)
    assert response.usage.generated_tokens < 1000
    assert response.usage.total_tokens == 4096
    assert response.finish_reason == "length"


async def test_unknown_model_is_not_found(worker):
    for call in (worker.generation.Generate, lambda r: collect(worker.generation.GenerateStream(r))):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(request("hello", model_id="other-model"))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    for call, message in ((worker.catalog.GetModelInfo, models_pb2.GetModelInfoRequest),
                          (worker.catalog.GetModelHealth, models_pb2.GetModelHealthRequest)):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(message(model_id="other-model"))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def generated_tokens() -> float:
    return REGISTRY.get_sample_value("medai_generation_tokens_total", {"model_id": "tiny-lm"}) or 0.0


async def running_count(worker) -> int:
    return (await worker.catalog.GetModelHealth(models_pb2.GetModelHealthRequest(model_id="tiny-lm"))).requests_running


async def test_full_queue_is_resource_exhausted(tiny_lm_dir, tmp_path):
    async with tiny_worker(tiny_lm_dir, tmp_path, max_concurrent_requests=1, max_queue=1) as worker:
        running = worker.generation.GenerateStream(request("hello", max_new_tokens=LONG))
        await running.read()  # decoding: it holds the one slot
        waiting = worker.generation.GenerateStream(request("hello", max_new_tokens=LONG))

        async def one_waiting() -> bool:
            health = await worker.catalog.GetModelHealth(models_pb2.GetModelHealthRequest(model_id="tiny-lm"))
            return (health.requests_running, health.requests_waiting) == (1, 1)

        await eventually(one_waiting)
        for call in (worker.generation.Generate, lambda r: collect(worker.generation.GenerateStream(r))):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call(request("hello", max_new_tokens=1))
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        running.cancel()
        assert (await waiting.read()).text is not None  # the waiting stream got the slot
        waiting.cancel()


async def test_cancelled_stream_frees_its_slot_within_a_step(tiny_lm_dir, tmp_path):
    async with tiny_worker(tiny_lm_dir, tmp_path, max_concurrent_requests=1, max_queue=0) as worker:
        generated_before = generated_tokens()
        stream = worker.generation.GenerateStream(request("hello", max_new_tokens=LONG))
        first = await stream.read()
        assert not first.HasField("finish_reason")
        loop = asyncio.get_running_loop()
        cancelled_at = loop.time()
        stream.cancel()

        async def slot_free() -> bool:
            return await running_count(worker) == 0

        await eventually(slot_free, timeout=2.0)  # far less than the whole stream takes
        assert loop.time() - cancelled_at < 2.0
        assert generated_tokens() - generated_before < LONG / 4  # stopped early, not decoded to the end
        response = await worker.generate("hello", max_new_tokens=3)  # no queue: refused if the slot were taken
        assert response.usage.generated_tokens == 3


async def test_client_deadline_frees_the_slot(tiny_lm_dir, tmp_path):
    async with tiny_worker(tiny_lm_dir, tmp_path, max_concurrent_requests=1, max_queue=0) as worker:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await worker.generation.Generate(request("hello", max_new_tokens=LONG), timeout=0.3)
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED

        async def slot_free() -> bool:
            return await running_count(worker) == 0

        await eventually(slot_free, timeout=2.0)
        assert (await worker.generate("hello", max_new_tokens=2)).usage.generated_tokens == 2


async def test_concurrent_streams_progress_together(tiny_lm_dir, tmp_path):
    async with tiny_worker(tiny_lm_dir, tmp_path, max_concurrent_requests=2, max_queue=0) as worker:
        alone = await worker.generate("Blood pressure", max_new_tokens=30)
        results = await asyncio.gather(
            worker.generate("Blood pressure", max_new_tokens=30),
            collect(worker.generation.GenerateStream(request("Blood pressure", max_new_tokens=30))),
        )
        assert results[0].text == alone.text
        assert "".join(chunk.text for chunk in results[1]) == alone.text


async def test_health_and_status_follow_loading_and_warm_up(tiny_lm_dir, tmp_path):
    async with tiny_worker(tiny_lm_dir, tmp_path, start=False) as worker:
        not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
        assert await health_status(worker.health) == not_serving
        assert await health_status(worker.health, "medai.generation.v1.Generation") == not_serving
        info = await worker.catalog.GetModelInfo(models_pb2.GetModelInfoRequest(model_id="tiny-lm"))
        assert info.status == "NOT_SERVING"
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await worker.generate("hello")
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        starting = asyncio.create_task(worker.deps.core.start())
        await wait_serving(worker.health)
        await starting
        assert worker.deps.core.catalog.status() == "SERVING"
        assert (await worker.generate("hello", max_new_tokens=2)).usage.generated_tokens == 2


async def test_model_catalog_describes_the_model(worker):
    listed = await worker.catalog.ListModels(models_pb2.ListModelsRequest())
    assert [model.model_id for model in listed.models] == ["tiny-lm"]
    assert await worker.catalog.ListModels(models_pb2.ListModelsRequest(model_type="embedding")) == \
        models_pb2.ListModelsResponse()
    info = await worker.catalog.GetModelInfo(models_pb2.GetModelInfoRequest(model_id="tiny-lm"))
    assert (info.model_type, info.status, info.backend, info.device, info.dtype, info.quantization) == \
        ("text-generation", "SERVING", "transformers", "cpu", "float32", "none")
    assert info.parameter_count > 10_000 and info.memory_bytes > 0
    assert info.context_length == 4096
    assert (info.limits.max_input_tokens, info.limits.max_new_tokens) == (4095, 4000)
    assert (info.limits.max_concurrent_requests, info.limits.max_queue, info.limits.max_batch_size) == (16, 32, 16)
    assert info.loaded_at.seconds > 0
    health = await worker.catalog.GetModelHealth(models_pb2.GetModelHealthRequest(model_id=""))
    assert (health.model_id, health.status, health.requests_running, health.requests_waiting) == \
        ("tiny-lm", "SERVING", 0, 0)


async def test_plain_prompt_is_wrapped_in_the_chat_template(tiny_lm_dir, tmp_path):
    async with tiny_worker(tiny_lm_dir, tmp_path, apply_chat_template=True) as worker:
        wrapped = await worker.generate("hello", max_new_tokens=2)
    async with tiny_worker(tiny_lm_dir, tmp_path, apply_chat_template=False) as worker:
        plain = await worker.generate("hello", max_new_tokens=2)
    # '<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n' against 'hello'
    assert wrapped.usage.prompt_tokens > plain.usage.prompt_tokens + 5
