"""Protobuf <-> domain conversion of the compliance service, public API and worker APIs (catalogue: libs.rpc)."""
from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import numpy
from google.protobuf import json_format, struct_pb2

from libs.rpc.timestamps import timestamp_to_pb
from libs.stores.audit import AuditRecord, Verification
from libs.validation import GenerationParams
from medai.common.v1 import inference_pb2
from medai.compliance.v1 import compliance_pb2
from medai.conversation.v1 import conversation_pb2
from medai.embedding.v1 import embedding_pb2
from medai.generation.v1 import generation_pb2
from services.compliance.core.types import (
    Caller,
    ChatCall,
    ChatChunk,
    ChatReply,
    EmbedCall,
    Embedded,
    GenerateCall,
    Generated,
    GeneratedChunk,
    Outputs,
    PredictInput,
    PredictResult,
    Redaction,
    RefusedCall,
    StreamChunk,
    Usage,
)

_GENERATION_OPTIONALS = ("max_new_tokens", "temperature", "top_p", "top_k", "repetition_penalty", "seed")


# Public API


def caller_from_pb(caller: inference_pb2.Caller, fallback_request_id: str) -> Caller:
    return Caller(
        request_id=caller.request_id or fallback_request_id, principal_id=caller.principal_id,
        key_name=caller.key_name, role=caller.role, permissions=tuple(caller.permissions),
        client_address=caller.client_address,
    )


def refusals_from_pb(request: compliance_pb2.RecordRefusalsRequest) -> list[RefusedCall]:
    return [
        RefusedCall(request_id=r.request_id, action=r.action, status_code=r.status_code,
                    client_address=r.client_address, principal_id=r.principal_id, claimed_key_id=r.claimed_key_id,
                    role=r.role, model_id=r.model_id,
                    refused_at=r.refused_at.ToDatetime(tzinfo=UTC) if r.HasField("refused_at") else None)
        for r in request.refusals
    ]


def predict_input_from_pb(request: inference_pb2.PredictRequest) -> PredictInput:
    parameters = request.parameters
    return PredictInput(
        model_id=request.model_id,
        inputs=json_format.MessageToDict(request.inputs) if request.HasField("inputs") else None,
        params=generation_params_from_pb(parameters),
        system_prompt=parameters.system_prompt if parameters.HasField("system_prompt") else None,
        normalize=parameters.normalize if parameters.HasField("normalize") else None,
        truncate=parameters.truncate if parameters.HasField("truncate") else None,
        user_id=request.user_id,
        session_id=request.session_id,
        purpose=request.purpose,
        raw_prompt=parameters.raw_prompt if parameters.HasField("raw_prompt") else False,
    )


def chat_input_from_pb(request: inference_pb2.ChatInput) -> PredictInput:
    """A stateless chat as a predict of its messages' contents (their roles alongside)."""
    parameters = request.parameters
    return PredictInput(
        model_id=request.model_id,
        inputs=[message.content for message in request.messages],
        roles=tuple(message.role for message in request.messages),
        params=generation_params_from_pb(parameters),
        user_id=request.user_id,
        purpose=request.purpose,
    )


def generation_params_from_pb(
    parameters: inference_pb2.PredictParameters | generation_pb2.GenerationParameters,
) -> GenerationParams:
    optionals = {name: getattr(parameters, name) for name in _GENERATION_OPTIONALS if parameters.HasField(name)}
    return GenerationParams(**optionals, stop=tuple(parameters.stop))


def predict_response_to_pb(result: PredictResult) -> inference_pb2.PredictResponse:
    metadata = result.metadata
    return inference_pb2.PredictResponse(
        request_id=result.request_id,
        model_id=result.model_id,
        outputs=outputs_to_pb(result.outputs),
        processing_time=result.processing_time,
        timestamp=timestamp_to_pb(result.timestamp),
        metadata=inference_pb2.PredictMetadata(**dataclasses.asdict(metadata)),
    )


def outputs_to_pb(outputs: Outputs) -> struct_pb2.Value:
    if isinstance(outputs, str):
        return struct_pb2.Value(string_value=outputs)
    if outputs and all(not isinstance(item, str) for item in outputs):
        return struct_pb2.Value.FromString(_list_value(b"".join(_entry(_list_value(_numbers(item)))
                                                                for item in outputs)))
    value = struct_pb2.Value()
    items = value.list_value.values
    for item in outputs:
        if isinstance(item, str):
            items.add(string_value=item)
        else:
            items.add().list_value.values.extend(struct_pb2.Value(number_value=x) for x in item)
    return value


# Vectors as a `Value` (a list of lists of numbers) are written in protobuf's wire format and parsed once:
# building one `Value` message per number in Python cost more than the rest of an embedding answer.
# Value.list_value is field 6 and ListValue.values field 1 (both length-delimited), Value.number_value
# field 2 (64-bit); the unit tests compare the result with the messages built one by one.
_LIST_VALUE, _ENTRY, _NUMBER_ENTRY = b"\x32", b"\x0a", b"\x0a\x09\x11"
_NUMBER_ENTRY_LAYOUT = numpy.dtype([("header", "S3"), ("number", "<f8")])  # packed: 11 bytes an entry


def _list_value(entries: bytes) -> bytes:
    """A `Value` whose list holds these entries."""
    return _LIST_VALUE + _varint(len(entries)) + entries


def _entry(value: bytes) -> bytes:
    """One entry of a ListValue: a `Value`."""
    return _ENTRY + _varint(len(value)) + value


def _numbers(vector: list[float]) -> bytes:
    """A ListValue's entries for numbers: each a `Value` with number_value set (laid out by numpy: an
    entry's 3 header bytes, then the little-endian double)."""
    entries = numpy.empty(len(vector), dtype=_NUMBER_ENTRY_LAYOUT)
    entries["header"] = _NUMBER_ENTRY
    entries["number"] = vector
    return entries.tobytes()


def _varint(number: int) -> bytes:
    out = bytearray()
    while number > 0x7F:
        out.append(number & 0x7F | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


def stream_chunk_to_pb(chunk: StreamChunk) -> inference_pb2.PredictStreamChunk:
    return inference_pb2.PredictStreamChunk(
        request_id=chunk.request_id, model_id=chunk.model_id, index=chunk.index, text=chunk.text,
        finish_reason=chunk.finish_reason, usage=usage_to_pb(chunk.usage) if chunk.usage else None,
        model_version=chunk.model_version, session_id=chunk.session_id,
    )


def deidentify_response_to_pb(redaction: Redaction) -> inference_pb2.DeidentifyResponse:
    return inference_pb2.DeidentifyResponse(
        redacted_text=redaction.text,
        entities=[inference_pb2.Entity(entity_type=e.entity_type, start=e.start, end=e.end, score=e.score)
                  for e in redaction.entities],
    )


def audit_records_to_pb(records: list[AuditRecord]) -> inference_pb2.ListAuditRecordsResponse:
    return inference_pb2.ListAuditRecordsResponse(records=[audit_record_to_pb(r) for r in records])


def audit_record_to_pb(record: AuditRecord) -> inference_pb2.AuditRecord:
    event = record.event
    return inference_pb2.AuditRecord(
        sequence=record.sequence, recorded_at=timestamp_to_pb(datetime.fromisoformat(event.recorded_at)),
        request_id=event.request_id, trace_id=event.trace_id, principal_id=event.principal_id, role=event.role,
        client_address=event.client_address, action=event.action, model_id=event.model_id,
        model_version=event.model_version, outcome=event.outcome, status_code=event.status_code,
        purpose=event.purpose, phi_entity_counts=dict(event.phi_entity_counts), input_digest=event.input_digest,
        output_digest=event.output_digest, latency_seconds=event.latency_seconds,
        previous_hash=record.previous_hash, record_hash=record.record_hash,
    )


def verification_to_pb(verification: Verification) -> inference_pb2.VerifyAuditResponse:
    return inference_pb2.VerifyAuditResponse(
        intact=verification.intact, records_checked=verification.records_checked,
        first_broken_sequence=verification.first_broken_sequence, reason=verification.reason,
    )


def usage_to_pb(usage: Usage) -> inference_pb2.Usage:
    return inference_pb2.Usage(prompt_tokens=usage.prompt_tokens, generated_tokens=usage.generated_tokens,
                               total_tokens=usage.total_tokens)


def usage_from_pb(usage: inference_pb2.Usage) -> Usage:
    return Usage(prompt_tokens=usage.prompt_tokens, generated_tokens=usage.generated_tokens)


# Worker APIs


def generation_params_to_pb(params: GenerationParams) -> generation_pb2.GenerationParameters:
    optionals = {name: getattr(params, name) for name in _GENERATION_OPTIONALS if getattr(params, name) is not None}
    return generation_pb2.GenerationParameters(**optionals, stop=list(params.stop))


def generate_request_to_pb(call: GenerateCall) -> generation_pb2.GenerateRequest:
    return generation_pb2.GenerateRequest(
        request_id=call.request_id, model_id=call.model_id, prompt=call.prompt,
        parameters=generation_params_to_pb(call.params), raw_prompt=call.raw_prompt,
        messages=[generation_pb2.ChatTurn(role=role, content=content) for role, content in call.messages])


def generated_from_pb(response: generation_pb2.GenerateResponse) -> Generated:
    return Generated(text=response.text, finish_reason=response.finish_reason, usage=usage_from_pb(response.usage),
                     model_version=response.model_version)


def generated_chunk_from_pb(chunk: generation_pb2.GenerateChunk) -> GeneratedChunk:
    return GeneratedChunk(
        index=chunk.index, text=chunk.text,
        finish_reason=chunk.finish_reason if chunk.HasField("finish_reason") else None,
        usage=usage_from_pb(chunk.usage) if chunk.HasField("usage") else None,
    )


def embed_request_to_pb(call: EmbedCall) -> embedding_pb2.EmbedRequest:
    return embedding_pb2.EmbedRequest(request_id=call.request_id, model_id=call.model_id, inputs=list(call.inputs),
                                      normalize=call.normalize, truncate=call.truncate)


def embedded_from_pb(response: embedding_pb2.EmbedResponse) -> Embedded:
    return Embedded(
        embeddings=[list(vector.values) for vector in response.embeddings], prompt_tokens=response.prompt_tokens,
        truncated_inputs=response.truncated_inputs, model_version=response.model_version,
    )


def chat_request_to_pb(call: ChatCall) -> conversation_pb2.ChatRequest:
    return conversation_pb2.ChatRequest(
        request_id=call.request_id, model_id=call.model_id, session_id=call.session_id, owner=call.owner,
        message=call.message, system_prompt=call.system_prompt, parameters=generation_params_to_pb(call.params),
    )


def chat_reply_from_pb(response: conversation_pb2.ChatResponse) -> ChatReply:
    return ChatReply(session_id=response.session_id, reply=generated_from_pb(response.reply), turns=response.turns)


def chat_chunk_from_pb(chunk: conversation_pb2.ChatChunk) -> ChatChunk:
    return ChatChunk(session_id=chunk.session_id, chunk=generated_chunk_from_pb(chunk.chunk))
