"""Protobuf <-> domain for the OpenAI-compatible API: its requests in, the mesh's answers out in OpenAI's
shapes (chat.completion, chat.completion.chunk, text_completion, embedding lists, models), and errors in
OpenAI's {"error": {...}} shape."""
from __future__ import annotations

import base64
import json
import re
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass

from google.protobuf import json_format, struct_pb2

from libs.errors import InvalidInput
from libs.rpc.interceptors import ErrorPresenter
from medai.common.v1 import inference_pb2, models_pb2
from medai.gateway.v1 import openai_pb2
from services.gateway.core.openai import OpenAIChat, OpenAICompletion, OpenAIEmbedding, Sampling

OWNER = "medserve"
# Carries an OpenAI error object out of the gateway; Envoy makes it the body of the JSON answer.
OPENAI_ERROR_HEADER = "x-medai-openai-error"
# The mesh's finish reasons as OpenAI names them.
FINISH_REASONS = {"stop": "stop", "stop_sequence": "stop", "length": "length", "cancelled": "stop"}
# gRPC status -> OpenAI error (type, code); the HTTP status is the usual mapping (400, 401, 403, 404, 429, ...).
ERROR_TYPES: dict[str, tuple[str, str | None]] = {
    "INVALID_ARGUMENT": ("invalid_request_error", None),
    "UNAUTHENTICATED": ("authentication_error", "invalid_api_key"),
    "PERMISSION_DENIED": ("permission_error", None),
    "NOT_FOUND": ("invalid_request_error", "not_found"),
    "RESOURCE_EXHAUSTED": ("rate_limit_error", "rate_limit_exceeded"),
    "UNAVAILABLE": ("server_error", "service_unavailable"),
    "DEADLINE_EXCEEDED": ("server_error", "timeout"),
    "CANCELLED": ("server_error", "cancelled"),
}
FALLBACK_ERROR = ("server_error", None)
_FIELD = re.compile(r"^([A-Za-z_.\[\]0-9]+): (.*)$", re.DOTALL)
# The mesh's field names as OpenAI's parameters (what is not listed keeps its name).
PARAMS = {"parameters.max_new_tokens": "max_tokens", "parameters.temperature": "temperature",
          "parameters.top_p": "top_p", "parameters.stop": "stop", "parameters.seed": "seed", "model_id": "model",
          "user_id": "user"}


def _value(message, name: str):
    """A google.protobuf.Value field as Python (None when unset)."""
    return json_format.MessageToDict(getattr(message, name)) if message.HasField(name) else None


def _optional(message, name: str):
    return getattr(message, name) if message.HasField(name) else None


def _extra(message, names: tuple[str, ...]) -> dict:
    return {name: (_value(message, name) if isinstance(getattr(message, name), struct_pb2.Value)
                   else _optional(message, name)) for name in names}


def chat_request(request: openai_pb2.ChatCompletionRequest) -> OpenAIChat:
    max_tokens = _optional(request, "max_completion_tokens") or _optional(request, "max_tokens")
    sampling = Sampling(max_tokens, _optional(request, "temperature"), _optional(request, "top_p"),
                        _value(request, "stop"), _optional(request, "seed"), _optional(request, "n"))
    messages = [(message.role, _value(message, "content")) for message in request.messages]
    extra = _extra(request, ("frequency_penalty", "presence_penalty", "logprobs", "top_logprobs", "tools",
                             "tool_choice", "response_format", "logit_bias"))
    return OpenAIChat(request.model, messages, sampling, request.user, request.stream_options.include_usage, extra)


def completion_request(request: openai_pb2.CompletionRequest) -> OpenAICompletion:
    sampling = Sampling(_optional(request, "max_tokens"), _optional(request, "temperature"),
                        _optional(request, "top_p"), _value(request, "stop"), _optional(request, "seed"),
                        _optional(request, "n"))
    extra = _extra(request, ("echo", "suffix", "logprobs", "best_of", "frequency_penalty", "presence_penalty",
                             "logit_bias"))
    return OpenAICompletion(request.model, _value(request, "prompt"), sampling, request.user,
                            request.stream_options.include_usage, extra)


def embedding_request(request: openai_pb2.EmbeddingRequest) -> OpenAIEmbedding:
    return OpenAIEmbedding(request.model, _value(request, "input"), request.encoding_format,
                           _optional(request, "dimensions"), request.user)


# --- answers ------------------------------------------------------------------------------------


def _created(reply: inference_pb2.PredictResponse) -> int:
    return reply.timestamp.seconds


def _usage(prompt_tokens: int, completion_tokens: int) -> openai_pb2.CompletionUsage:
    return openai_pb2.CompletionUsage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                                      total_tokens=prompt_tokens + completion_tokens)


def _finish(reason: str) -> str:
    return FINISH_REASONS.get(reason, "stop")


def chat_completion(reply: inference_pb2.PredictResponse) -> openai_pb2.ChatCompletion:
    meta = reply.metadata
    choice = openai_pb2.ChatCompletionChoice(
        index=0, message=openai_pb2.ChatCompletionMessage(role="assistant", content=reply.outputs.string_value),
        finish_reason=_finish(meta.finish_reason))
    return openai_pb2.ChatCompletion(
        id=f"chatcmpl-{reply.request_id}", object="chat.completion", created=_created(reply), model=reply.model_id,
        choices=[choice], usage=_usage(meta.prompt_tokens, meta.tokens_generated),
        system_fingerprint=meta.model_version)


def completion(reply: inference_pb2.PredictResponse) -> openai_pb2.Completion:
    meta = reply.metadata
    outputs = json_format.MessageToDict(reply.outputs)
    texts = [outputs] if isinstance(outputs, str) else list(outputs)
    choices = [openai_pb2.CompletionChoice(index=index, text=text, finish_reason=_finish(meta.finish_reason))
               for index, text in enumerate(texts)]
    return openai_pb2.Completion(
        id=f"cmpl-{reply.request_id}", object="text_completion", created=_created(reply), model=reply.model_id,
        choices=choices, usage=_usage(meta.prompt_tokens, meta.tokens_generated),
        system_fingerprint=meta.model_version)


def embedding_list(reply: inference_pb2.PredictResponse, encoding_format: str) -> openai_pb2.EmbeddingList:
    vectors = json_format.MessageToDict(reply.outputs)
    if vectors and not isinstance(vectors[0], list):  # one input: one vector
        vectors = [vectors]
    data = [openai_pb2.Embedding(object="embedding", index=index,
                                 embedding=_vector(vector, encoding_format == "base64"))
            for index, vector in enumerate(vectors)]
    tokens = reply.metadata.prompt_tokens
    return openai_pb2.EmbeddingList(object="list", data=data, model=reply.model_id,
                                    usage=openai_pb2.EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens))


def _vector(vector: list[float], as_base64: bool) -> struct_pb2.Value:
    """The floats, or (as OpenAI encodes them) base64 of little-endian float32s."""
    value = struct_pb2.Value()
    if as_base64:
        value.string_value = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    else:
        value.list_value.extend(vector)
    return value


def model(info: models_pb2.ModelInfo) -> openai_pb2.OpenAIModel:
    created = info.loaded_at.seconds if info.HasField("loaded_at") else 0
    return openai_pb2.OpenAIModel(id=info.model_id, object="model", created=created, owned_by=OWNER)


def model_list(records: list[models_pb2.ModelInfo]) -> openai_pb2.OpenAIModelList:
    return openai_pb2.OpenAIModelList(object="list", data=[model(info) for info in records])


@dataclass
class StreamShape:
    """What shapes every event of one OpenAI stream: its id, time and model (from its first chunk), whether the
    assistant role was sent, and whether the client asked for a usage event."""

    include_usage: bool
    id: str | None = None
    created: int = 0
    model: str = ""
    role_sent: bool = False

    def begin(self, chunk: inference_pb2.PredictStreamChunk, prefix: str) -> None:
        if self.id is None:
            self.id, self.model, self.created = f"{prefix}-{chunk.request_id}", chunk.model_id, int(time.time())


def chat_chunks(chunk: inference_pb2.PredictStreamChunk,
                shape: StreamShape) -> Iterator[openai_pb2.ChatCompletionChunk]:
    """chat.completion.chunk events of one of the mesh's stream chunks: the text (the assistant role on the
    first), the finish reason on the last, then (with include_usage) a last chunk with usage and no choices."""
    shape.begin(chunk, "chatcmpl")
    delta = openai_pb2.ChatCompletionDelta(content=chunk.text)
    if not shape.role_sent:
        delta.role = "assistant"
        shape.role_sent = True
    choice = openai_pb2.ChatCompletionChunkChoice(index=0, delta=delta)
    if chunk.HasField("finish_reason"):
        choice.finish_reason = _finish(chunk.finish_reason)
    yield openai_pb2.ChatCompletionChunk(id=shape.id, object="chat.completion.chunk", created=shape.created,
                                         model=shape.model, choices=[choice], system_fingerprint=chunk.model_version)
    if chunk.HasField("finish_reason") and shape.include_usage:
        yield openai_pb2.ChatCompletionChunk(
            id=shape.id, object="chat.completion.chunk", created=shape.created, model=shape.model,
            usage=_usage(chunk.usage.prompt_tokens, chunk.usage.generated_tokens),
            system_fingerprint=chunk.model_version)


def completion_chunks(chunk: inference_pb2.PredictStreamChunk,
                      shape: StreamShape) -> Iterator[openai_pb2.Completion]:
    """text_completion events of one of the mesh's stream chunks (usage last, as for chat)."""
    shape.begin(chunk, "cmpl")
    choice = openai_pb2.CompletionChoice(index=0, text=chunk.text)
    if chunk.HasField("finish_reason"):
        choice.finish_reason = _finish(chunk.finish_reason)
    yield openai_pb2.Completion(id=shape.id, object="text_completion", created=shape.created, model=shape.model,
                                choices=[choice], system_fingerprint=chunk.model_version)
    if chunk.HasField("finish_reason") and shape.include_usage:
        yield openai_pb2.Completion(id=shape.id, object="text_completion", created=shape.created, model=shape.model,
                                    usage=_usage(chunk.usage.prompt_tokens, chunk.usage.generated_tokens),
                                    system_fingerprint=chunk.model_version)


# --- errors ---------------------------------------------------------------------------------------


def openai_error(code: str, message: str, inputs_param: str,
                 error: BaseException | None = None) -> openai_pb2.OpenAIError:
    """The OpenAI error for a status: its type and code, and the request parameter at fault, by OpenAI's
    name, in front of the message ("max_tokens: must be between ...")."""
    kind, error_code = ERROR_TYPES.get(code, FALLBACK_ERROR)
    field = getattr(error, "field", None) if isinstance(error, InvalidInput) else None
    match = _FIELD.match(message)
    if field is None and match and code in ("INVALID_ARGUMENT", "NOT_FOUND"):
        field = match.group(1)
    param = _param(field, inputs_param) if field else None
    text = message
    if field and match:
        text = f"{param}: {match.group(2)}"
    result = openai_pb2.OpenAIError(message=text, type=kind)
    if param:
        result.param = param
    if error_code:
        result.code = "model_not_found" if code == "NOT_FOUND" and param == "model" else error_code
    return result


def _param(field: str, inputs_param: str) -> str:
    """e.g. "inputs[2]" -> "messages[2].content" (inputs_param "messages[i].content"), "inputs" -> "messages"."""
    if field == "inputs":
        return inputs_param.split("[")[0]
    if field.startswith("inputs["):
        return inputs_param.replace("[i]", field[len("inputs"):])
    return PARAMS.get(field, field)


def error_presenter(inputs_param: str, chunk_type: type | None = None) -> ErrorPresenter:
    """Errors of one OpenAI method: the error object for Envoy to answer with, and (streams) the last event.

    inputs_param: what the mesh's `inputs` is called here ("messages[i].content", "prompt[i]", "input[i]")."""

    def metadata(error: BaseException, code: str, message: str) -> tuple[tuple[str, str], ...]:
        body = json_format.MessageToDict(openai_error(code, message, inputs_param, error),
                                         preserving_proto_field_name=True)
        body.setdefault("param", None)
        body.setdefault("code", None)
        return ((OPENAI_ERROR_HEADER, json.dumps(body, ensure_ascii=True, separators=(",", ":"))),)

    def stream_chunk(code: str, message: str, request_id: str):
        return chunk_type(id=request_id, error=openai_error(code, message, inputs_param))

    return ErrorPresenter(stream_chunk=stream_chunk if chunk_type else None, metadata=metadata)
