"""Protobuf <-> domain conversion for the language-model workers (generation; reused by conversation)."""
from __future__ import annotations

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from libs.llm.catalog import ModelCard, ModelHealthReport
from libs.llm.types import Completion, TextDelta, Usage
from libs.validation import GenerationParams
from medai.common.v1 import inference_pb2, models_pb2
from medai.generation.v1 import generation_pb2
from services.generation.core import GenerateCommand

_OPTIONAL_PARAMS = ("max_new_tokens", "temperature", "top_p", "top_k", "repetition_penalty", "seed")


def generation_params(parameters: generation_pb2.GenerationParameters) -> GenerationParams:
    """Unset optional fields stay None (the model's defaults)."""
    values = {name: getattr(parameters, name) for name in _OPTIONAL_PARAMS if parameters.HasField(name)}
    return GenerationParams(**values, stop=tuple(parameters.stop))


def generate_command(request: generation_pb2.GenerateRequest) -> GenerateCommand:
    return GenerateCommand(request.model_id, request.prompt, generation_params(request.parameters))


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


def model_info(card: ModelCard) -> models_pb2.ModelInfo:
    limits = card.limits
    info = models_pb2.ModelInfo(
        model_id=card.model_id, model_type=card.model_type, model_version=card.model_version, status=card.status,
        source=card.source, revision=card.revision, quantization=card.quantization, device=card.device,
        dtype=card.dtype, parameter_count=card.parameter_count, memory_bytes=card.memory_bytes,
        context_length=card.context_length, backend=card.backend, description=card.description,
        limits=models_pb2.ModelLimits(
            max_input_tokens=limits.max_input_tokens, max_new_tokens=limits.max_new_tokens,
            max_batch_size=limits.max_batch_size, max_concurrent_requests=limits.max_concurrent_requests,
            max_queue=limits.max_queue,
        ),
    )
    if card.loaded_at is not None:
        info.loaded_at.CopyFrom(_timestamp(card.loaded_at))
    return info


def list_models_response(cards: list[ModelCard]) -> models_pb2.ListModelsResponse:
    return models_pb2.ListModelsResponse(models=[model_info(card) for card in cards])


def model_health(report: ModelHealthReport) -> models_pb2.ModelHealth:
    return models_pb2.ModelHealth(model_id=report.model_id, status=report.status,
                                  requests_running=report.requests_running, requests_waiting=report.requests_waiting,
                                  checked_at=_timestamp(report.checked_at))


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp
