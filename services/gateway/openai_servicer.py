"""The OpenAI-compatible API (medai.gateway.v1.OpenAI): translates each RPC to the OpenAI use cases and back."""
from __future__ import annotations

from medai.gateway.v1 import openai_pb2, openai_pb2_grpc
from services.gateway import mapper
from services.gateway import openai_mapper as shapes
from services.gateway.core.openai import OpenAIApi

SERVICE_NAME = openai_pb2.DESCRIPTOR.services_by_name["OpenAI"].full_name
# How each method presents its errors: OpenAI's error object (and a last event for streams).
ERROR_PRESENTERS = {
    f"/{SERVICE_NAME}/CreateChatCompletion": shapes.error_presenter("messages[i].content"),
    f"/{SERVICE_NAME}/StreamChatCompletion": shapes.error_presenter("messages[i].content",
                                                                    openai_pb2.ChatCompletionChunk),
    f"/{SERVICE_NAME}/CreateCompletion": shapes.error_presenter("prompt[i]"),
    f"/{SERVICE_NAME}/StreamCompletion": shapes.error_presenter("prompt[i]", openai_pb2.Completion),
    f"/{SERVICE_NAME}/CreateEmbedding": shapes.error_presenter("input[i]"),
    f"/{SERVICE_NAME}/ListModels": shapes.error_presenter("model"),
    f"/{SERVICE_NAME}/RetrieveModel": shapes.error_presenter("model"),
}


class OpenAIServicer(openai_pb2_grpc.OpenAIServicer):
    def __init__(self, api: OpenAIApi) -> None:
        self._api = api

    async def CreateChatCompletion(self, request, context):
        reply = await self._api.chat(mapper.call_metadata(context), shapes.chat_request(request))
        return shapes.chat_completion(reply)

    async def StreamChatCompletion(self, request, context):
        chat = shapes.chat_request(request)
        shape = shapes.StreamShape(chat.include_usage)
        async for chunk in self._api.chat_stream(mapper.call_metadata(context), chat):
            for event in shapes.chat_chunks(chunk, shape):
                yield event

    async def CreateCompletion(self, request, context):
        reply = await self._api.completion(mapper.call_metadata(context), shapes.completion_request(request))
        return shapes.completion(reply)

    async def StreamCompletion(self, request, context):
        completion = shapes.completion_request(request)
        shape = shapes.StreamShape(completion.include_usage)
        async for chunk in self._api.completion_stream(mapper.call_metadata(context), completion):
            for event in shapes.completion_chunks(chunk, shape):
                yield event

    async def CreateEmbedding(self, request, context):
        reply = await self._api.embeddings(mapper.call_metadata(context), shapes.embedding_request(request))
        return shapes.embedding_list(reply, request.encoding_format)

    async def ListModels(self, request, context):
        return shapes.model_list(await self._api.models(mapper.call_metadata(context)))

    async def RetrieveModel(self, request, context):
        return shapes.model(await self._api.model(mapper.call_metadata(context), request.model))
