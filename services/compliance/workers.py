"""gRPC clients of the model workers: the core's `WorkerClients` protocol over one channel per address.

Worker errors come back as the same domain errors (INVALID_ARGUMENT -> InvalidInput, ...), with the
worker's own message when the worker reported them (e.g. "session store unavailable"); an UNAVAILABLE
of the transport (worker down, unreachable) becomes NotReady with a fixed message, so transport
details such as addresses never reach a client.
"""
from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

import grpc

from libs.catalog import ModelCard, ModelHealthReport
from libs.rpc.catalog import model_card_from_pb, model_health_from_pb
from libs.rpc.channels import open_channel
from libs.rpc.status import translated_rpc_errors
from libs.tls import MeshTls
from libs.tls.identity import WORKER_NAME
from medai.common.v1 import models_pb2, models_pb2_grpc
from medai.conversation.v1 import conversation_pb2, conversation_pb2_grpc
from medai.embedding.v1 import embedding_pb2, embedding_pb2_grpc
from medai.generation.v1 import generation_pb2_grpc
from services.compliance import mapper
from services.compliance.core.types import (
    ChatCall,
    ChatChunk,
    ChatReply,
    EmbedCall,
    Embedded,
    GenerateCall,
    Generated,
    GeneratedChunk,
)

# Read-only services: the channel retries them once on UNAVAILABLE (on the next replica, if several).
IDEMPOTENT_SERVICES = (
    models_pb2.DESCRIPTOR.services_by_name["ModelCatalog"].full_name,
    embedding_pb2.DESCRIPTOR.services_by_name["Embedding"].full_name,
)
WORKER_UNAVAILABLE = "model worker unavailable"


def _worker_errors() -> contextlib.AbstractAsyncContextManager[None]:
    return translated_rpc_errors(WORKER_UNAVAILABLE)


class GrpcWorkers:
    """Implements `services.compliance.core.ports.WorkerClients`.

    reconnect_backoff_seconds caps how long a channel to a down worker waits between connection
    attempts (the registry's refresh period fits: a worker that comes back is found by the next refresh).
    With mesh TLS, every worker must present a certificate naming `worker` (any of the worker identities:
    which models an address serves is learnt from its catalogue).
    """

    def __init__(self, reconnect_backoff_seconds: float | None = None, tls: MeshTls | None = None) -> None:
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._backoff = reconnect_backoff_seconds
        self._tls = tls

    def _channel(self, address: str) -> grpc.aio.Channel:
        if address not in self._channels:
            self._channels[address] = open_channel(address, idempotent_services=IDEMPOTENT_SERVICES,
                                                   max_reconnect_backoff_seconds=self._backoff,
                                                   load_balancing="round_robin", tls=self._tls,
                                                   server_name=WORKER_NAME)
        return self._channels[address]

    async def close(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close()

    async def list_models(self, address: str, timeout: float | None) -> Sequence[ModelCard]:
        stub = models_pb2_grpc.ModelCatalogStub(self._channel(address))
        async with _worker_errors():
            response = await stub.ListModels(models_pb2.ListModelsRequest(), timeout=timeout)
        return [model_card_from_pb(info) for info in response.models]

    async def model_health(self, address: str, model_id: str, timeout: float | None) -> ModelHealthReport:
        stub = models_pb2_grpc.ModelCatalogStub(self._channel(address))
        async with _worker_errors():
            response = await stub.GetModelHealth(models_pb2.GetModelHealthRequest(model_id=model_id), timeout=timeout)
        return model_health_from_pb(response)

    async def generate(self, address: str, call: GenerateCall, timeout: float | None) -> Generated:
        stub = generation_pb2_grpc.GenerationStub(self._channel(address))
        async with _worker_errors():
            response = await stub.Generate(mapper.generate_request_to_pb(call), timeout=timeout)
        return mapper.generated_from_pb(response)

    async def generate_stream(self, address: str, call: GenerateCall,
                              timeout: float | None) -> AsyncIterator[GeneratedChunk]:
        stub = generation_pb2_grpc.GenerationStub(self._channel(address))
        async for chunk in _streamed(stub.GenerateStream(mapper.generate_request_to_pb(call), timeout=timeout)):
            yield mapper.generated_chunk_from_pb(chunk)

    async def embed(self, address: str, call: EmbedCall, timeout: float | None) -> Embedded:
        stub = embedding_pb2_grpc.EmbeddingStub(self._channel(address))
        async with _worker_errors():
            response = await stub.Embed(mapper.embed_request_to_pb(call), timeout=timeout)
        return mapper.embedded_from_pb(response)

    async def chat(self, address: str, call: ChatCall, timeout: float | None) -> ChatReply:
        stub = conversation_pb2_grpc.ConversationStub(self._channel(address))
        async with _worker_errors():
            response = await stub.Chat(mapper.chat_request_to_pb(call), timeout=timeout)
        return mapper.chat_reply_from_pb(response)

    async def chat_stream(self, address: str, call: ChatCall, timeout: float | None) -> AsyncIterator[ChatChunk]:
        stub = conversation_pb2_grpc.ConversationStub(self._channel(address))
        async for chunk in _streamed(stub.ChatStream(mapper.chat_request_to_pb(call), timeout=timeout)):
            yield mapper.chat_chunk_from_pb(chunk)

    async def delete_session(self, address: str, session_id: str, owner: str, timeout: float | None) -> bool:
        stub = conversation_pb2_grpc.ConversationStub(self._channel(address))
        request = conversation_pb2.DeleteSessionRequest(session_id=session_id, owner=owner)
        async with _worker_errors():
            response = await stub.DeleteSession(request, timeout=timeout)
        return response.deleted


async def _streamed(call: grpc.aio.UnaryStreamCall) -> AsyncIterator:
    """The messages of a server stream, with errors translated; cancels the call if abandoned."""
    try:
        async with _worker_errors():
            async for message in call:
                yield message
    finally:
        call.cancel()
