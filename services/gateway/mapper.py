"""Protobuf <-> gateway domain conversions (the only place that knows both)."""
from __future__ import annotations

from datetime import UTC, datetime

import grpc
from google.api import httpbody_pb2
from google.protobuf import json_format, struct_pb2, timestamp_pb2

from libs.rpc.catalog import model_card_from_pb
from libs.rpc.context import current_request_id
from libs.validation import GenerationParams
from medai.common.v1 import inference_pb2, models_pb2
from medai.compliance.v1 import compliance_pb2
from medai.monitor.v1 import monitor_pb2
from services.gateway.core.docs import Document
from services.gateway.core.model import (
    Caller,
    CallMetadata,
    CatalogEntry,
    MeshHealth,
    PredictCall,
    Refusal,
    ServiceStatus,
)

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def call_metadata(context: grpc.aio.ServicerContext) -> CallMetadata:
    metadata = {key: value for key, value in context.invocation_metadata() or () if isinstance(value, str)}
    forwarded = metadata.get("x-forwarded-for", "").split(",")[0].strip()
    return CallMetadata(
        authorization=metadata.get("authorization"),
        request_id=current_request_id(),
        client_address=forwarded or context.peer(),
        deadline_seconds=context.time_remaining(),
    )


def _optional(message, name: str):
    return getattr(message, name) if message.HasField(name) else None


def predict_call(request: inference_pb2.PredictRequest) -> PredictCall:
    p = request.parameters
    params = GenerationParams(
        max_new_tokens=_optional(p, "max_new_tokens"),
        temperature=_optional(p, "temperature"),
        top_p=_optional(p, "top_p"),
        top_k=_optional(p, "top_k"),
        repetition_penalty=_optional(p, "repetition_penalty"),
        stop=tuple(p.stop),
        seed=_optional(p, "seed"),
    )
    inputs = json_format.MessageToDict(request.inputs) if request.HasField("inputs") else None
    return PredictCall(
        model_id=request.model_id,
        inputs=inputs,
        params=params,
        system_prompt=_optional(p, "system_prompt"),
        normalize=_optional(p, "normalize"),
        truncate=_optional(p, "truncate"),
        user_id=request.user_id,
        session_id=request.session_id,
        purpose=request.purpose,
        request_bytes=request.ByteSize(),
    )


def predict_parameters(call: PredictCall) -> inference_pb2.PredictParameters:
    params = call.params
    fields = {
        "max_new_tokens": params.max_new_tokens, "temperature": params.temperature, "top_p": params.top_p,
        "top_k": params.top_k, "repetition_penalty": params.repetition_penalty, "seed": params.seed,
        "system_prompt": call.system_prompt, "normalize": call.normalize, "truncate": call.truncate,
        "raw_prompt": call.raw_prompt or None,
    }
    return inference_pb2.PredictParameters(
        stop=list(params.stop), **{name: value for name, value in fields.items() if value is not None}
    )


def chat_input(call: PredictCall) -> inference_pb2.ChatInput:
    """A stateless chat for compliance: the messages, roles and contents, in order."""
    messages = [inference_pb2.ChatMessage(role=role, content=content)
                for role, content in zip(call.roles, call.inputs, strict=True)]
    return inference_pb2.ChatInput(model_id=call.model_id, messages=messages, parameters=predict_parameters(call),
                                   user_id=call.user_id, purpose=call.purpose)


def predict_request(call: PredictCall) -> inference_pb2.PredictRequest:
    parameters = predict_parameters(call)
    return inference_pb2.PredictRequest(
        model_id=call.model_id,
        inputs=json_format.ParseDict(call.inputs, struct_pb2.Value()),
        parameters=parameters,
        user_id=call.user_id,
        session_id=call.session_id,
        purpose=call.purpose,
    )


def caller(value: Caller) -> inference_pb2.Caller:
    principal = value.principal
    return inference_pb2.Caller(
        request_id=value.request_id,
        principal_id=principal.key_id,
        key_name=principal.key_name,
        role=principal.role,
        permissions=sorted(str(p) for p in principal.permissions),
        client_address=value.client_address,
    )


def catalog_entries(response: models_pb2.ListModelsResponse) -> list[CatalogEntry]:
    return [CatalogEntry(info.model_id, info.model_type, info, model_card_from_pb(info).limits,
                         info.embedding_dimension,
                         info.loaded_at.ToDatetime(UTC).timestamp() if info.HasField("loaded_at") else None)
            for info in response.models]


def generated_tokens(reply: inference_pb2.PredictResponse | inference_pb2.PredictStreamChunk) -> int | None:
    """Tokens generated per a predict answer (0 when it came from the cache) or a stream's last chunk."""
    if isinstance(reply, inference_pb2.PredictStreamChunk):
        return reply.usage.generated_tokens if reply.HasField("usage") else None
    return 0 if reply.metadata.cached else reply.metadata.tokens_generated


def list_models_response(records: list[models_pb2.ModelInfo]) -> models_pb2.ListModelsResponse:
    return models_pb2.ListModelsResponse(models=records)


def _timestamp(seconds: float | None) -> timestamp_pb2.Timestamp | None:
    if seconds is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(datetime.fromtimestamp(seconds, UTC))
    return stamp


def stream_error_chunk(code: str, message: str, request_id: str) -> inference_pb2.PredictStreamChunk:
    """The last event of a PredictStream cut short (see libs.rpc.interceptors.ErrorInterceptor)."""
    error = inference_pb2.StreamError(code=code, message=message, request_id=request_id)
    return inference_pb2.PredictStreamChunk(request_id=request_id, error=error)


def refusal(value: Refusal) -> compliance_pb2.Refusal:
    message = compliance_pb2.Refusal(
        request_id=value.request_id, principal_id=value.principal_id, claimed_key_id=value.claimed_key_id,
        role=value.role, client_address=value.client_address, action=value.action, model_id=value.model_id,
        status_code=value.status_code,
    )
    message.refused_at.GetCurrentTime()
    return message


def mesh_health_to_pb(health: MeshHealth) -> monitor_pb2.MeshHealth:
    message = monitor_pb2.MeshHealth(status=health.status, not_serving=health.not_serving)
    message.checked_at.GetCurrentTime()
    for name, service in health.services.items():
        message.services[name].status = service.status
        if service.since is not None:
            message.services[name].since.CopyFrom(_timestamp(service.since))
    return message


def mesh_health_from_pb(message: monitor_pb2.MeshHealth) -> MeshHealth:
    services = {
        name: ServiceStatus(s.status, s.since.ToDatetime(UTC).timestamp() if s.HasField("since") else None)
        for name, s in message.services.items()
    }
    return MeshHealth(message.status, services, list(message.not_serving))


def metrics_body(text: str) -> httpbody_pb2.HttpBody:
    return httpbody_pb2.HttpBody(content_type=PROMETHEUS_CONTENT_TYPE, data=text.encode())


def http_body(document: Document) -> httpbody_pb2.HttpBody:
    return httpbody_pb2.HttpBody(content_type=document.content_type, data=document.data)
