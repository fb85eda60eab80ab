"""gRPC servicers of the embedding worker: translate with the mapper, call the embedder."""
from __future__ import annotations

import grpc

from medai.common.v1 import models_pb2, models_pb2_grpc
from medai.embedding.v1 import embedding_pb2, embedding_pb2_grpc
from services.embedding import mapper
from services.embedding.core.embedder import Embedder


class EmbeddingServicer(embedding_pb2_grpc.EmbeddingServicer):
    def __init__(self, embedder: Embedder) -> None:
        self._embedder = embedder

    async def Embed(
        self, request: embedding_pb2.EmbedRequest, context: grpc.aio.ServicerContext
    ) -> embedding_pb2.EmbedResponse:
        result = await self._embedder.embed(mapper.embed_request(request))
        return mapper.embed_response(result)


class ModelCatalogServicer(models_pb2_grpc.ModelCatalogServicer):
    def __init__(self, embedder: Embedder) -> None:
        self._embedder = embedder

    async def ListModels(
        self, request: models_pb2.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> models_pb2.ListModelsResponse:
        return mapper.list_models_response(self._embedder.list_models(request.model_type))

    async def GetModelInfo(
        self, request: models_pb2.GetModelInfoRequest, context: grpc.aio.ServicerContext
    ) -> models_pb2.ModelInfo:
        return mapper.model_info(self._embedder.model_info(request.model_id))

    async def GetModelHealth(
        self, request: models_pb2.GetModelHealthRequest, context: grpc.aio.ServicerContext
    ) -> models_pb2.ModelHealth:
        return mapper.model_health(self._embedder.model_health(request.model_id))
