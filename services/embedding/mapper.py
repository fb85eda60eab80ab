"""Protobuf <-> domain conversion for the embedding worker."""
from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from medai.common.v1 import models_pb2
from medai.embedding.v1 import embedding_pb2
from services.embedding.core.types import EmbedRequest, EmbedResult, ModelDescription, ModelHealthReport


def embed_request(request: embedding_pb2.EmbedRequest) -> EmbedRequest:
    """Unset `normalize` and `truncate` default to true."""
    return EmbedRequest(
        model_id=request.model_id,
        inputs=tuple(request.inputs),
        normalize=request.normalize if request.HasField("normalize") else True,
        truncate=request.truncate if request.HasField("truncate") else True,
    )


def embed_response(result: EmbedResult) -> embedding_pb2.EmbedResponse:
    return embedding_pb2.EmbedResponse(
        embeddings=[embedding_pb2.Vector(values=row) for row in result.vectors.tolist()],
        prompt_tokens=result.prompt_tokens,
        truncated_inputs=result.truncated_inputs,
        model_version=result.model_version,
    )


def model_info(model: ModelDescription) -> models_pb2.ModelInfo:
    info = models_pb2.ModelInfo(
        model_id=model.model_id,
        model_type=model.model_type,
        model_version=model.model_version,
        status=model.status,
        source=model.source,
        revision=model.revision,
        quantization=model.quantization,
        device=model.device,
        dtype=model.dtype,
        parameter_count=model.parameter_count,
        memory_bytes=model.memory_bytes,
        context_length=model.context_length,
        limits=models_pb2.ModelLimits(
            max_input_tokens=model.limits.max_input_tokens,
            max_batch_size=model.limits.max_batch_size,
            max_concurrent_requests=model.limits.max_concurrent_requests,
            max_queue=model.limits.max_queue,
        ),
        embedding_dimension=model.embedding_dimension,
        backend=model.backend,
        description=model.description,
    )
    if model.loaded_at is not None:
        info.loaded_at.CopyFrom(_timestamp(model.loaded_at))
    return info


def list_models_response(models: list[ModelDescription]) -> models_pb2.ListModelsResponse:
    return models_pb2.ListModelsResponse(models=[model_info(model) for model in models])


def model_health(report: ModelHealthReport) -> models_pb2.ModelHealth:
    return models_pb2.ModelHealth(
        model_id=report.model_id,
        status=report.status,
        requests_running=report.requests_running,
        requests_waiting=report.requests_waiting,
        checked_at=_timestamp(report.checked_at),
    )


def _timestamp(seconds: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp
