"""Compliance in front of the real embedding worker (shipped MiniLM): the worker embeds only redacted text."""
from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
from google.protobuf import struct_pb2

from libs.config import AppSettings, ComplianceSettings, EmbeddingSettings, ModelSettings
from libs.rpc.health import HealthReporter
from medai.common.v1 import inference_pb2
from medai.compliance.v1 import compliance_pb2, compliance_pb2_grpc
from medai.embedding.v1 import embedding_pb2, embedding_pb2_grpc
from services.compliance.core.service import ComplianceCore
from services.compliance.server import SERVICE_NAMES, ComplianceDeps
from services.compliance.server import create_server as create_compliance_server
from services.compliance.workers import GrpcWorkers
from services.embedding.server import build_deps
from services.embedding.server import create_server as create_embedding_server

pytestmark = pytest.mark.slow

MODEL_ID = "minilm-behind-compliance"
TEXTS = ["John Smith reports chest pain.", "Call 617-555-0123 about the results."]
REDACTED = ["[PERSON_1] reports chest pain.", "Call [PHONE_NUMBER_1] about the results."]
TEST_APP = AppSettings(environment="test")


@contextlib.asynccontextmanager
async def embedding_worker(cache_dir) -> AsyncIterator[tuple[str, embedding_pb2_grpc.EmbeddingStub]]:
    settings = EmbeddingSettings(host="127.0.0.1", port=0, metrics_port=0, app=TEST_APP, model_id=MODEL_ID,
                                 model=ModelSettings(cache_dir=cache_dir))
    deps = await build_deps(settings)
    server, port = create_embedding_server(settings, deps)
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        await deps.embedder.start()
        yield f"127.0.0.1:{port}", embedding_pb2_grpc.EmbeddingStub(channel)
    finally:
        await channel.close()
        await server.stop(None)
        await deps.embedder.stop()


@contextlib.asynccontextmanager
async def compliance_for(address: str, deidentifier) -> AsyncIterator[compliance_pb2_grpc.ComplianceStub]:
    settings = ComplianceSettings(host="127.0.0.1", port=0, metrics_port=0, app=TEST_APP, workers=[address])
    executor, workers = ThreadPoolExecutor(1), GrpcWorkers()
    core = ComplianceCore.from_settings(settings, workers, executor)
    health = HealthReporter(SERVICE_NAMES)
    server, port = create_compliance_server(settings, ComplianceDeps(core, health))
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        await core.start(lambda: deidentifier, health)
        yield compliance_pb2_grpc.ComplianceStub(channel)
    finally:
        await channel.close()
        await server.stop(None)
        await workers.close()
        executor.shutdown()


def as_array(values) -> np.ndarray:
    return np.array([[x.number_value for x in v.list_value.values] for v in values], dtype=np.float32)


async def test_embeddings_are_of_the_redacted_texts(presidio_deidentifier, tmp_path):
    async with embedding_worker(tmp_path / "models") as (address, worker), \
            compliance_for(address, presidio_deidentifier) as compliance:
        inputs = struct_pb2.Value()
        inputs.list_value.values.extend(struct_pb2.Value(string_value=text) for text in TEXTS)
        request = inference_pb2.PredictRequest(model_id=MODEL_ID, inputs=inputs)
        response = await compliance.Predict(compliance_pb2.ProxyPredictRequest(
            caller=inference_pb2.Caller(request_id="r-emb", principal_id="p"), request=request), timeout=60)

        vectors = as_array(response.outputs.list_value.values)
        assert vectors.shape == (2, 384)
        assert response.metadata.model_type == "embedding" and response.metadata.phi_entities_redacted == 2
        assert response.metadata.prompt_tokens > 0

        redacted = await worker.Embed(embedding_pb2.EmbedRequest(model_id=MODEL_ID, inputs=REDACTED))
        raw = await worker.Embed(embedding_pb2.EmbedRequest(model_id=MODEL_ID, inputs=TEXTS))
        expected = np.array([list(v.values) for v in redacted.embeddings], dtype=np.float32)
        original = np.array([list(v.values) for v in raw.embeddings], dtype=np.float32)
        np.testing.assert_allclose(vectors, expected, atol=1e-4)
        assert not np.allclose(vectors, original, atol=1e-3)
