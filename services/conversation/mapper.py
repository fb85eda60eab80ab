"""Protobuf <-> domain conversion for the conversation worker (generation.v1 parts from the generation mapper)."""
from __future__ import annotations

from medai.conversation.v1 import conversation_pb2
from services.conversation.core.conversation import ChatCommand, ChatDelta, ChatReply
from services.generation.mapper import generate_chunk, generate_response, generation_params


def chat_command(request: conversation_pb2.ChatRequest) -> ChatCommand:
    return ChatCommand(
        model_id=request.model_id,
        session_id=request.session_id,
        owner=request.owner,
        message=request.message,
        system_prompt=request.system_prompt if request.HasField("system_prompt") else None,
        params=generation_params(request.parameters),
    )


def chat_response(reply: ChatReply, model_version: str) -> conversation_pb2.ChatResponse:
    return conversation_pb2.ChatResponse(session_id=reply.session_id, turns=reply.turns,
                                         reply=generate_response(reply.completion, model_version))


def chat_chunk(item: ChatDelta) -> conversation_pb2.ChatChunk:
    return conversation_pb2.ChatChunk(session_id=item.session_id, chunk=generate_chunk(item.delta))


def delete_session_response(deleted: bool) -> conversation_pb2.DeleteSessionResponse:
    return conversation_pb2.DeleteSessionResponse(deleted=deleted)
