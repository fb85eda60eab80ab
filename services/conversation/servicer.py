"""gRPC servicer of the conversation worker: translate with the mapper, call the core."""
from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import grpc

from medai.conversation.v1 import conversation_pb2, conversation_pb2_grpc
from services.conversation import mapper
from services.conversation.core.conversation import ConversationCore


class ConversationServicer(conversation_pb2_grpc.ConversationServicer):
    def __init__(self, core: ConversationCore) -> None:
        self._core = core

    async def Chat(
        self, request: conversation_pb2.ChatRequest, context: grpc.aio.ServicerContext
    ) -> conversation_pb2.ChatResponse:
        reply = await self._core.chat(mapper.chat_command(request))
        return mapper.chat_response(reply, self._core.model_version)

    async def ChatStream(
        self, request: conversation_pb2.ChatRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[conversation_pb2.ChatChunk]:
        async with contextlib.aclosing(self._core.chat_stream(mapper.chat_command(request))) as deltas:
            async for item in deltas:
                yield mapper.chat_chunk(item)

    async def DeleteSession(
        self, request: conversation_pb2.DeleteSessionRequest, context: grpc.aio.ServicerContext
    ) -> conversation_pb2.DeleteSessionResponse:
        return mapper.delete_session_response(await self._core.delete(request.session_id, request.owner))
