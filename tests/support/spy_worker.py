"""A spy model worker for compliance tests: a real gRPC server on 127.0.0.1 that records what it is sent.

It serves ModelCatalog, Generation, Conversation and Embedding the way the real workers do (in the
public shapes), answers with a configurable reply, and can be told to fail with a status.
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc

from libs.errors import MedaiError
from libs.rpc.status import trailing_metadata_for
from medai.common.v1 import inference_pb2, models_pb2, models_pb2_grpc
from medai.conversation.v1 import conversation_pb2, conversation_pb2_grpc
from medai.embedding.v1 import embedding_pb2, embedding_pb2_grpc
from medai.generation.v1 import generation_pb2, generation_pb2_grpc

GEN_MODEL = "spy-gen"
CHAT_MODEL = "spy-chat"
EMB_MODEL = "spy-emb"
MODEL_VERSION = "spy-1"
DEFAULT_MODELS = {GEN_MODEL: "text-generation", CHAT_MODEL: "conversation", EMB_MODEL: "embedding"}


@dataclass
class Recorded:
    """One call the spy received: its request and the deadline it had left (seconds, None: no deadline)."""

    method: str
    request: object
    time_remaining: float | None


@dataclass
class SpyState:
    models: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_MODELS))
    reply: str = "Rest and fluids."
    status: str = "SERVING"  # what the catalogue reports for every model
    fail_with: tuple[grpc.StatusCode, str] | None = None
    # Set: GenerateStream sends its first chunk, then waits for this event (or for cancellation).
    hold_stream: asyncio.Event | None = None
    # True: GenerateStream sends its first chunk, then fails UNAVAILABLE (a worker dying mid-stream).
    fail_mid_stream: bool = False
    cancelled_streams: int = 0
    calls: list[Recorded] = field(default_factory=list)
    sessions: itertools.count = field(default_factory=lambda: itertools.count(1))

    def requests(self, method: str) -> list:
        return [call.request for call in self.calls if call.method == method]

    async def record(self, method: str, request: object, context: grpc.aio.ServicerContext) -> None:
        self.calls.append(Recorded(method, request, context.time_remaining()))
        if self.fail_with:  # as a MedServe worker reports an error (its ErrorInterceptor marks it)
            await context.abort(*self.fail_with, trailing_metadata_for(MedaiError()))

    def usage(self, prompt: str) -> inference_pb2.Usage:
        prompt_tokens, generated = len(prompt.split()), len(self.reply.split())
        return inference_pb2.Usage(prompt_tokens=prompt_tokens, generated_tokens=generated,
                                   total_tokens=prompt_tokens + generated)

    def chunks(self, prompt: str) -> list[generation_pb2.GenerateChunk]:
        words = self.reply.split(" ")
        deltas = [word if index == 0 else f" {word}" for index, word in enumerate(words)]
        chunks = [generation_pb2.GenerateChunk(index=index, text=delta) for index, delta in enumerate(deltas)]
        chunks.append(generation_pb2.GenerateChunk(index=len(deltas), text="", finish_reason="stop",
                                                   usage=self.usage(prompt)))
        return chunks


class SpyCatalog(models_pb2_grpc.ModelCatalogServicer):
    def __init__(self, state: SpyState) -> None:
        self.state = state

    async def ListModels(self, request, context):
        await self.state.record("ListModels", request, context)
        return models_pb2.ListModelsResponse(models=[
            models_pb2.ModelInfo(model_id=model_id, model_type=model_type, model_version=MODEL_VERSION,
                                 status=self.state.status, device="cpu",
                                 limits=models_pb2.ModelLimits(max_new_tokens=64))
            for model_id, model_type in self.state.models.items()
        ])

    async def GetModelInfo(self, request, context):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not used")

    async def GetModelHealth(self, request, context):
        await self.state.record("GetModelHealth", request, context)
        return models_pb2.ModelHealth(model_id=request.model_id, status="SERVING", requests_running=1)


class SpyGeneration(generation_pb2_grpc.GenerationServicer):
    def __init__(self, state: SpyState) -> None:
        self.state = state

    async def Generate(self, request, context):
        await self.state.record("Generate", request, context)
        return generation_pb2.GenerateResponse(text=self.state.reply, finish_reason="stop",
                                               usage=self.state.usage(request.prompt), model_version=MODEL_VERSION)

    async def GenerateStream(self, request, context):
        await self.state.record("GenerateStream", request, context)
        for index, chunk in enumerate(self.state.chunks(request.prompt)):
            yield chunk
            if index == 0 and self.state.fail_mid_stream:
                await context.abort(grpc.StatusCode.UNAVAILABLE, "model worker unavailable",
                                    trailing_metadata_for(MedaiError()))
            if index == 0 and self.state.hold_stream:
                try:
                    await self.state.hold_stream.wait()
                except asyncio.CancelledError:
                    self.state.cancelled_streams += 1
                    raise


class SpyConversation(conversation_pb2_grpc.ConversationServicer):
    def __init__(self, state: SpyState) -> None:
        self.state = state

    def _session(self, request) -> str:
        return request.session_id or f"s{next(self.state.sessions)}"

    async def Chat(self, request, context):
        await self.state.record("Chat", request, context)
        reply = generation_pb2.GenerateResponse(text=self.state.reply, finish_reason="stop",
                                                usage=self.state.usage(request.message), model_version=MODEL_VERSION)
        return conversation_pb2.ChatResponse(session_id=self._session(request), reply=reply, turns=1)

    async def ChatStream(self, request, context):
        await self.state.record("ChatStream", request, context)
        session_id = self._session(request)
        for chunk in self.state.chunks(request.message):
            yield conversation_pb2.ChatChunk(session_id=session_id, chunk=chunk)

    async def DeleteSession(self, request, context):
        await self.state.record("DeleteSession", request, context)
        return conversation_pb2.DeleteSessionResponse(deleted=True)


class SpyEmbedding(embedding_pb2_grpc.EmbeddingServicer):
    """One small vector per input: [characters, position, 1]."""

    def __init__(self, state: SpyState) -> None:
        self.state = state

    async def Embed(self, request, context):
        await self.state.record("Embed", request, context)
        vectors = [embedding_pb2.Vector(values=[float(len(text)), float(index), 1.0])
                   for index, text in enumerate(request.inputs)]
        tokens = sum(len(text.split()) for text in request.inputs)
        return embedding_pb2.EmbedResponse(embeddings=vectors, prompt_tokens=tokens, model_version=MODEL_VERSION)


@dataclass
class SpyWorker:
    state: SpyState
    server: grpc.aio.Server
    port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def stop(self) -> None:
        await self.server.stop(None)


async def start_spy(port: int = 0, state: SpyState | None = None) -> SpyWorker:
    """A started spy worker on 127.0.0.1:port (0: a free port)."""
    state = state or SpyState()
    server = grpc.aio.server()
    models_pb2_grpc.add_ModelCatalogServicer_to_server(SpyCatalog(state), server)
    generation_pb2_grpc.add_GenerationServicer_to_server(SpyGeneration(state), server)
    conversation_pb2_grpc.add_ConversationServicer_to_server(SpyConversation(state), server)
    embedding_pb2_grpc.add_EmbeddingServicer_to_server(SpyEmbedding(state), server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return SpyWorker(state, server, bound)


@contextlib.asynccontextmanager
async def running_spy(port: int = 0, state: SpyState | None = None) -> AsyncIterator[SpyWorker]:
    spy = await start_spy(port, state)
    try:
        yield spy
    finally:
        await spy.stop()
