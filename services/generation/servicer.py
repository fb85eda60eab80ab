"""gRPC servicers of the generation worker: translate with the mapper, call the core."""
from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import grpc

from libs.llm.catalog import EngineCatalog
from medai.common.v1 import models_pb2, models_pb2_grpc
from medai.generation.v1 import generation_pb2, generation_pb2_grpc
from services.generation import mapper
from services.generation.core import GenerationCore


class GenerationServicer(generation_pb2_grpc.GenerationServicer):
    def __init__(self, core: GenerationCore) -> None:
        self._core = core

    async def Generate(
        self, request: generation_pb2.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> generation_pb2.GenerateResponse:
        completion = await self._core.generate(mapper.generate_command(request))
        return mapper.generate_response(completion, self._core.model_version)

    async def GenerateStream(
        self, request: generation_pb2.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[generation_pb2.GenerateChunk]:
        async with contextlib.aclosing(self._core.generate_stream(mapper.generate_command(request))) as deltas:
            async for delta in deltas:
                yield mapper.generate_chunk(delta)


class ModelCatalogServicer(models_pb2_grpc.ModelCatalogServicer):
    """ModelCatalog of a worker serving one engine (also used by the conversation worker)."""

    def __init__(self, catalog: EngineCatalog) -> None:
        self._catalog = catalog

    async def ListModels(
        self, request: models_pb2.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> models_pb2.ListModelsResponse:
        return mapper.list_models_response(self._catalog.list_models(request.model_type))

    async def GetModelInfo(
        self, request: models_pb2.GetModelInfoRequest, context: grpc.aio.ServicerContext
    ) -> models_pb2.ModelInfo:
        return mapper.model_info(self._catalog.model_info(request.model_id))

    async def GetModelHealth(
        self, request: models_pb2.GetModelHealthRequest, context: grpc.aio.ServicerContext
    ) -> models_pb2.ModelHealth:
        return mapper.model_health(self._catalog.model_health(request.model_id))
