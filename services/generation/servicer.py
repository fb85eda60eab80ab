"""gRPC servicer of the generation worker: translate with the mapper, call the core."""
from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import grpc

from medai.generation.v1 import generation_pb2, generation_pb2_grpc
from services.generation import mapper
from services.generation.core import PromptCompleter


class GenerationServicer(generation_pb2_grpc.GenerationServicer):
    def __init__(self, core: PromptCompleter) -> None:
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
