"""gRPC servicer of the embedding worker: translate with the mapper, call the embedder."""
from __future__ import annotations

import grpc

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
