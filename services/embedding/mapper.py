"""Protobuf <-> domain conversion for the embedding worker."""
from __future__ import annotations

from medai.embedding.v1 import embedding_pb2
from services.embedding.core.types import EmbedRequest, EmbedResult


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
