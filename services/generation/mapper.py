"""Protobuf <-> domain conversion for the language-model workers (generation; reused by conversation)."""
from __future__ import annotations

from libs.llm.types import ChatMessage, Completion, TextDelta, Usage
from libs.validation import GenerationParams
from medai.common.v1 import inference_pb2
from medai.generation.v1 import generation_pb2
from services.generation.core import GenerateCommand

_OPTIONAL_PARAMS = ("max_new_tokens", "temperature", "top_p", "top_k", "repetition_penalty", "seed")


def generation_params(parameters: generation_pb2.GenerationParameters) -> GenerationParams:
    """Unset optional fields stay None (the model's defaults)."""
    values = {name: getattr(parameters, name) for name in _OPTIONAL_PARAMS if parameters.HasField(name)}
    return GenerationParams(**values, stop=tuple(parameters.stop))


def generate_command(request: generation_pb2.GenerateRequest) -> GenerateCommand:
    messages = tuple(ChatMessage(turn.role, turn.content) for turn in request.messages)
    return GenerateCommand(request.model_id, request.prompt, generation_params(request.parameters), messages,
                           request.raw_prompt)


def usage(value: Usage) -> inference_pb2.Usage:
    return inference_pb2.Usage(prompt_tokens=value.prompt_tokens, generated_tokens=value.generated_tokens,
                               total_tokens=value.total_tokens)


def generate_response(completion: Completion, model_version: str) -> generation_pb2.GenerateResponse:
    return generation_pb2.GenerateResponse(text=completion.text, finish_reason=completion.finish_reason,
                                           usage=usage(completion.usage), model_version=model_version)


def generate_chunk(delta: TextDelta) -> generation_pb2.GenerateChunk:
    chunk = generation_pb2.GenerateChunk(index=delta.index, text=delta.text)
    if delta.finish_reason is not None:
        chunk.finish_reason = delta.finish_reason
    if delta.usage is not None:
        chunk.usage.CopyFrom(usage(delta.usage))
    return chunk
