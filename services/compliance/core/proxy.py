"""The compliance proxy: validate, de-identify, call the model's worker, answer in the public format.

Audit records (before the worker call and on completion) and output-stream redaction are a
later issue; they slot in around `_call` and into `predict_stream`.
"""
from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from libs.catalog import CONVERSATION
from libs.errors import InvalidInput
from libs.validation import validate_inputs
from services.compliance.core.deidentify import PlaceholderMap, Redactor
from services.compliance.core.handlers import Answer, ModelCall, ModelHandler
from services.compliance.core.ports import ConversationClient
from services.compliance.core.registry import ModelRegistry, Route
from services.compliance.core.types import (
    Caller,
    Outputs,
    PredictInput,
    PredictMetadata,
    PredictResult,
    Redaction,
    StreamChunk,
)


@dataclass(frozen=True)
class ProxyLimits:
    max_inputs: int
    max_input_chars: int


@dataclass(frozen=True)
class _Prepared:
    """A validated, de-identified call and what the redaction found."""

    call: ModelCall
    handler: ModelHandler
    placeholders: PlaceholderMap
    entities_redacted: int


class ComplianceProxy:
    def __init__(self, registry: ModelRegistry, redactor: Redactor, handlers: dict[str, ModelHandler],
                 conversations: ConversationClient, limits: ProxyLimits, *, redact_outputs: bool) -> None:
        self._registry = registry
        self._redactor = redactor
        self._handlers = handlers
        self._conversations = conversations
        self._limits = limits
        self._redact_outputs = redact_outputs

    async def predict(self, caller: Caller, request: PredictInput, timeout: float | None) -> PredictResult:
        """De-identify the inputs, call the worker, and (if configured) de-identify generated text too."""
        started = time.perf_counter()
        prepared = await self._prepare(caller, request, timeout)
        answer = await prepared.handler.predict(prepared.call)
        output_redactions: list[Redaction] = []
        if self._redact_outputs and answer.texts:
            output_redactions = await self._redactor.redact(answer.texts, prepared.placeholders)
            answer = replace(answer, texts=[r.text for r in output_redactions])
        route = prepared.call.route
        return PredictResult(
            request_id=caller.request_id,
            model_id=route.info.model_id,
            outputs=_outputs(answer, single=isinstance(request.inputs, str)),
            processing_time=time.perf_counter() - started,
            timestamp=datetime.now(UTC),
            metadata=PredictMetadata(
                model_type=route.model_type,
                model_version=answer.model_version or route.info.model_version,
                tokens_generated=answer.usage.generated_tokens,
                prompt_tokens=answer.usage.prompt_tokens,
                finish_reason=answer.finish_reason,
                phi_entities_redacted=prepared.entities_redacted + sum(len(r.entities) for r in output_redactions),
                truncated_inputs=answer.truncated_inputs,
                session_id=answer.session_id,
            ),
        )

    async def predict_stream(self, caller: Caller, request: PredictInput,
                             timeout: float | None) -> AsyncIterator[StreamChunk]:
        """Token stream of a text-generation or conversation model, for a single string input."""
        self._redactor.ensure_ready()
        route = await self._route(request.model_id)
        if not self._handler(route).streams:
            raise InvalidInput(f"models of type '{route.model_type}' do not stream", field="model_id")
        if not isinstance(request.inputs, str):
            raise InvalidInput("streaming takes a single string", field="inputs")
        prepared = await self._prepare(caller, request, timeout, route)
        model_version = route.info.model_version
        index = 0
        async for piece in prepared.handler.stream(prepared.call):
            chunk = piece.chunk
            yield StreamChunk(
                request_id=caller.request_id, model_id=route.info.model_id, index=index, text=chunk.text,
                finish_reason=chunk.finish_reason, usage=chunk.usage, model_version=model_version,
                session_id=piece.session_id,
            )
            index += 1

    async def deidentify(self, caller: Caller, text: str) -> Redaction:
        """text with its PHI replaced, and the spans found (offsets in the original)."""
        if not text.strip():
            raise InvalidInput("must not be empty", field="text")
        if len(text) > self._limits.max_input_chars:
            raise InvalidInput(f"longer than {self._limits.max_input_chars} characters", field="text")
        (redaction,) = await self._redactor.redact([text], PlaceholderMap())
        return redaction

    async def delete_session(self, caller: Caller, model_id: str, session_id: str, timeout: float | None) -> bool:
        """Delete the caller's own session on a conversation model."""
        route = await self._route(model_id)
        if route.model_type != CONVERSATION:
            raise InvalidInput(f"models of type '{route.model_type}' have no sessions", field="model_id")
        if not session_id:
            raise InvalidInput("is required", field="session_id")
        if not caller.principal_id:
            raise InvalidInput("is required", field="caller.principal_id")
        return await self._conversations.delete_session(route.address, session_id, caller.principal_id, timeout)

    async def _prepare(self, caller: Caller, request: PredictInput, timeout: float | None,
                       route: Route | None = None) -> _Prepared:
        self._redactor.ensure_ready()
        route = route or await self._route(request.model_id)
        handler = self._handler(route)
        texts = validate_inputs(request.inputs, max_items=self._limits.max_inputs,
                                max_chars=self._limits.max_input_chars)
        handler.check(caller, request, texts, route)
        system_prompt = request.system_prompt if handler.takes_system_prompt and request.system_prompt else None
        if system_prompt is not None and len(system_prompt) > self._limits.max_input_chars:
            raise InvalidInput(f"longer than {self._limits.max_input_chars} characters",
                               field="parameters.system_prompt")
        placeholders = PlaceholderMap()
        redactions = await self._redactor.redact([*texts, *([system_prompt] if system_prompt else [])],
                                                 placeholders)
        redacted = [r.text for r in redactions]
        call = ModelCall(caller=caller, route=route, request=request, texts=redacted[:len(texts)],
                         system_prompt=redacted[len(texts)] if system_prompt else None, timeout=timeout)
        return _Prepared(call, handler, placeholders, sum(len(r.entities) for r in redactions))

    async def _route(self, model_id: str) -> Route:
        if not model_id:
            raise InvalidInput("is required", field="model_id")
        return await self._registry.route(model_id)

    def _handler(self, route: Route) -> ModelHandler:
        handler = self._handlers.get(route.model_type)
        if handler is None:
            raise InvalidInput(f"model type '{route.model_type}' is not supported", field="model_id")
        return handler


def _outputs(answer: Answer, *, single: bool) -> Outputs:
    if answer.vectors is not None:
        return answer.vectors
    return answer.texts[0] if single else answer.texts

