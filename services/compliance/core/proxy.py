"""The compliance proxy: validate, de-identify, call the model's worker, answer in the public format.

Around every call: an audit record once the request is validated and de-identified (before the
cache and the worker) and one with its outcome (`auditing.RequestAudit`); generated text is
de-identified, streams through a bounded hold-back window (`streaming.StreamRedactor`); callers
holding `phi:reidentify` get the placeholders of what they sent restored; conversations keep
their placeholders across turns (`session_placeholders`).
"""
from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from libs.catalog import CONVERSATION
from libs.errors import InvalidInput, MedaiError, NotReady
from libs.stores.audit import AuditRecord, Verification
from libs.validation import validate_inputs
from services.compliance.core.audit import AuditLog, Digester, refusal_events
from services.compliance.core.auditing import PayloadSealer, RequestAudit
from services.compliance.core.cache import ResponseCache
from services.compliance.core.deidentify import PlaceholderMap, Redactor
from services.compliance.core.handlers import STATELESS, STATELESS_TYPES, Answer, ModelCall, ModelHandler
from services.compliance.core.ports import ConversationClient
from services.compliance.core.registry import ModelRegistry, Route
from services.compliance.core.reidentification import StreamRestorer, reidentify
from services.compliance.core.session_placeholders import SessionPlaceholders
from services.compliance.core.streaming import StreamRedactor
from services.compliance.core.types import (
    Caller,
    ChatChunk,
    Outputs,
    PredictInput,
    PredictMetadata,
    PredictResult,
    Redaction,
    RefusedCall,
    StreamChunk,
)


@dataclass(frozen=True)
class ProxyLimits:
    max_inputs: int
    max_input_chars: int
    audit_list_max: int = 1000
    max_chat_messages: int = 256


REIDENTIFY_PERMISSION = "phi:reidentify"


@dataclass(frozen=True)
class Safeguards:
    """What the proxy audits with, where conversation placeholders live, how streams are held back."""

    audit: AuditLog | None = None
    digester: Digester = field(default_factory=lambda: Digester(b""))
    sessions: SessionPlaceholders | None = None
    vault: PayloadSealer | None = None
    stream_holdback_chars: int = 160
    stream_min_release_chars: int = 24


@dataclass(frozen=True)
class _Prepared:
    """A validated, de-identified call and what the redaction found."""

    call: ModelCall
    handler: ModelHandler
    placeholders: PlaceholderMap
    entities_redacted: int


class ComplianceProxy:
    def __init__(self, registry: ModelRegistry, redactor: Redactor, handlers: dict[str, ModelHandler],
                 conversations: ConversationClient, limits: ProxyLimits, *, redact_outputs: bool,
                 cache: ResponseCache | None = None, safeguards: Safeguards | None = None) -> None:
        self._registry = registry
        self._redactor = redactor
        self._handlers = handlers
        self._conversations = conversations
        self._limits = limits
        self._redact_outputs = redact_outputs
        self._cache = cache
        self._safeguards = safeguards or Safeguards()

    async def predict(self, caller: Caller, request: PredictInput, timeout: float | None) -> PredictResult:
        """De-identify the inputs, call the worker, and (if configured) de-identify generated text too.
        A stateless chat (`request.roles`) is de-identified with one placeholder map across its messages."""
        started = time.perf_counter()
        async with self._audit(caller, "chat" if request.roles else "predict", request) as audit:
            prepared = await self._prepare(caller, request, timeout, audit=audit)
            await audit.started()
            answer, output_redactions, cached = await self._answer(prepared)
            # Fresh and cached answers alike go on from here (their own audit record, re-identification).
            for redaction in output_redactions:
                audit.found(redaction.entities)
            answer = await self._delivered(caller, prepared, answer)
            audit.answered(answer.vectors if answer.vectors is not None else answer.texts, answer.model_version)
            return self._result(caller, request, prepared, answer, output_redactions, cached, started)

    def _result(self, caller: Caller, request: PredictInput, prepared: _Prepared, answer: Answer,
                output_redactions: list[Redaction], cached: bool, started: float) -> PredictResult:
        route = prepared.call.route
        return PredictResult(
            request_id=caller.request_id,
            model_id=route.info.model_id,
            outputs=_outputs(answer, single=request.single),
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
                cached=cached,
            ),
        )

    async def _answer(self, prepared: _Prepared) -> tuple[Answer, list[Redaction], bool]:
        """The worker's answer with its texts de-identified (if configured), or the same from the
        response cache; and whether it came from the cache."""
        cache = self._cache
        key = cache.key_for(prepared.call) if cache is not None else None
        hit = await cache.get(key, prepared.call.model_id) if cache is not None else None
        if hit is not None:
            return hit, [], True
        answer = await prepared.handler.predict(prepared.call)
        output_redactions: list[Redaction] = []
        if self._redact_outputs and answer.texts:
            output_redactions = await self._redactor.redact(answer.texts, prepared.placeholders)
            answer = replace(answer, texts=[r.text for r in output_redactions])
        if cache is not None and (self._redact_outputs or not answer.texts):  # de-identified texts only
            await cache.put(key, answer)
        return answer, output_redactions, False

    async def _delivered(self, caller: Caller, prepared: _Prepared, answer: Answer) -> Answer:
        """Keep a conversation's placeholders for its next turns; restore the caller's values if allowed."""
        sessions = self._safeguards.sessions
        if sessions is not None and prepared.call.route.model_type == CONVERSATION and answer.session_id:
            await sessions.save(answer.session_id, caller.principal_id, prepared.placeholders)
        if answer.texts and REIDENTIFY_PERMISSION in caller.permissions:
            supplied = prepared.placeholders.supplied
            answer = replace(answer, texts=[reidentify(text, supplied) for text in answer.texts])
        return answer

    def _audit(self, caller: Caller, action: str, request: PredictInput | None = None, *, model_id: str = "",
               inputs: object = None) -> RequestAudit:
        guards = self._safeguards
        return RequestAudit(guards.audit, guards.digester, caller, action,
                            model_id=request.model_id if request is not None else model_id,
                            purpose=request.purpose if request is not None else "",
                            inputs=request.inputs if request is not None else inputs,
                            vault=guards.vault if request is not None else None)

    async def predict_stream(self, caller: Caller, request: PredictInput,
                             timeout: float | None) -> AsyncIterator[StreamChunk]:
        """Token stream of a text-generation or conversation model, for a single string input.

        Generated text is released through the hold-back window (redacted); a chunk whose text is
        held back is not sent, the final chunk carries what was still held."""
        async with self._audit(caller, "chat_stream" if request.roles else "predict_stream", request) as audit:
            self._redactor.ensure_ready()
            route = await self._route(request.model_id)
            if not self._handler(route, request).streams:
                raise InvalidInput(f"models of type '{route.model_type}' do not stream", field="model_id")
            if not request.single:
                raise InvalidInput("streaming takes a single string", field="inputs")
            prepared = await self._prepare(caller, request, timeout, route, audit=audit)
            await audit.started()
            guards = self._safeguards
            window = StreamRedactor(self._redactor, prepared.placeholders, max_hold_chars=guards.stream_holdback_chars,
                                    min_release_chars=guards.stream_min_release_chars) if self._redact_outputs else None
            restore = StreamRestorer(prepared.placeholders.supplied) \
                if REIDENTIFY_PERMISSION in caller.permissions else None
            model_version = route.info.model_version
            index, session_id, delivered = 0, "", []

            def released(text: str, piece: ChatChunk | None = None) -> StreamChunk | None:
                """The next public chunk for text released by the window (None: nothing to send yet);
                piece None: the last text, flushed after a failure."""
                nonlocal index
                chunk = piece.chunk if piece is not None else None
                final = chunk is None or chunk.finish_reason is not None
                if restore is not None:
                    text = restore.feed(text) + (restore.finish() if final else "")
                if not text and (chunk is None or (chunk.finish_reason is None and chunk.usage is None)):
                    return None
                delivered.append(text)
                index += 1
                return StreamChunk(
                    request_id=caller.request_id, model_id=route.info.model_id, index=index - 1, text=text,
                    finish_reason=chunk.finish_reason if chunk else None, usage=chunk.usage if chunk else None,
                    model_version=model_version, session_id=piece.session_id if piece else session_id,
                )

            try:
                async for piece in prepared.handler.stream(prepared.call):
                    chunk = piece.chunk
                    session_id = piece.session_id or session_id
                    text = chunk.text
                    if window is not None:
                        text = await window.feed(text)
                        if chunk.finish_reason is not None:
                            text += await window.finish()
                    if (out := released(text, piece)) is not None:
                        yield out
            except MedaiError:
                # The worker failed mid-stream: what it generated so far still reaches the client
                # (de-identified) before the error does.
                held = await window.finish() if window is not None else ""
                if (out := released(held)) is not None:
                    yield out
                raise
            if window is not None:
                audit.add_counts(window.counts)
            if self._safeguards.sessions is not None and route.model_type == CONVERSATION and session_id:
                await self._safeguards.sessions.save(session_id, caller.principal_id, prepared.placeholders)
            audit.answered("".join(delivered), model_version)

    async def deidentify(self, caller: Caller, text: str) -> Redaction:
        """text with its PHI replaced, and the spans found (offsets in the original)."""
        async with self._audit(caller, "deidentify", inputs=text) as audit:
            if not text.strip():
                raise InvalidInput("must not be empty", field="text")
            if len(text) > self._limits.max_input_chars:
                raise InvalidInput(f"longer than {self._limits.max_input_chars} characters", field="text")
            (redaction,) = await self._redactor.redact([text], PlaceholderMap())
            audit.found(redaction.entities)
            audit.answered(redaction.text)
            return redaction

    async def delete_session(self, caller: Caller, model_id: str, session_id: str, timeout: float | None) -> bool:
        """Delete the caller's own session on a conversation model (and its placeholder map)."""
        async with self._audit(caller, "delete_session", model_id=model_id):
            route = await self._route(model_id)
            if route.model_type != CONVERSATION:
                raise InvalidInput(f"models of type '{route.model_type}' have no sessions", field="model_id")
            if not session_id:
                raise InvalidInput("is required", field="session_id")
            if not caller.principal_id:
                raise InvalidInput("is required", field="caller.principal_id")
            deleted = await self._conversations.delete_session(route.address, session_id, caller.principal_id,
                                                               timeout)
            if self._safeguards.sessions is not None:
                await self._safeguards.sessions.forget(session_id, caller.principal_id)
            return deleted

    async def list_audit_records(self, caller: Caller, *, after_sequence: int, limit: int,
                                 request_id: str) -> list[AuditRecord]:
        """Audit records after a sequence number (optionally of one request), for `audit:read` callers."""
        async with self._audit(caller, "audit.list"):
            if limit < 0 or after_sequence < 0:
                raise InvalidInput("must not be negative", field="limit" if limit < 0 else "after_sequence")
            if after_sequence > MAX_SEQUENCE:
                raise InvalidInput(f"must be at most {MAX_SEQUENCE}", field="after_sequence")
            if request_id and not _PURPOSE.match(request_id):
                raise InvalidInput("is not a request id", field="request_id")
            log = self._audit_log()
            limit = min(limit or 100, self._limits.audit_list_max)
            return await log.list(caller, after_sequence=after_sequence, limit=limit, request_id=request_id)

    async def verify_audit(self, caller: Caller) -> Verification:
        """Walk the audit chain and its signed checkpoints, for `audit:verify` callers."""
        async with self._audit(caller, "audit.verify"):
            return await self._audit_log().verify(caller)

    async def record_refusals(self, refusals: list[RefusedCall]) -> int:
        """Audit records of calls the gateway refused; how many were recorded."""
        await self._audit_log().write_all(refusal_events(refusals))
        return len(refusals)

    def _audit_log(self) -> AuditLog:
        if self._safeguards.audit is None:
            raise NotReady("audit log unavailable")
        return self._safeguards.audit

    async def _prepare(self, caller: Caller, request: PredictInput, timeout: float | None,
                       route: Route | None = None, *, audit: RequestAudit | None = None) -> _Prepared:
        self._redactor.ensure_ready()
        route = route or await self._route(request.model_id)
        handler = self._handler(route, request)
        max_items = self._limits.max_chat_messages if request.roles else self._limits.max_inputs
        texts = validate_inputs(request.inputs, max_items=max_items, max_chars=self._limits.max_input_chars)
        handler.check(caller, request, texts, route)
        system_prompt = request.system_prompt if handler.takes_system_prompt and request.system_prompt else None
        if system_prompt is not None and len(system_prompt) > self._limits.max_input_chars:
            raise InvalidInput(f"longer than {self._limits.max_input_chars} characters",
                               field="parameters.system_prompt")
        if request.purpose and not _PURPOSE.match(request.purpose):
            raise InvalidInput("must be a code of at most 64 letters, digits or ._:- (e.g. TREAT)", field="purpose")
        placeholders = await self._placeholders(caller, request, route)
        redactions = await self._redactor.redact([*texts, *([system_prompt] if system_prompt else [])],
                                                 placeholders)
        placeholders.mark_supplied()
        if audit is not None:
            for redaction in redactions:
                audit.found(redaction.entities)
        redacted = [r.text for r in redactions]
        call = ModelCall(caller=caller, route=route, request=request, texts=redacted[:len(texts)],
                         system_prompt=redacted[len(texts)] if system_prompt else None, timeout=timeout)
        return _Prepared(call, handler, placeholders, sum(len(r.entities) for r in redactions))

    async def _placeholders(self, caller: Caller, request: PredictInput, route: Route) -> PlaceholderMap:
        """A conversation's placeholders so far (stable across turns), else a new map for this request."""
        sessions = self._safeguards.sessions
        if sessions is not None and route.model_type == CONVERSATION and request.session_id:
            return await sessions.load(request.session_id, caller.principal_id)
        return PlaceholderMap()

    async def _route(self, model_id: str) -> Route:
        if not model_id:
            raise InvalidInput("is required", field="model_id")
        return await self._registry.route(model_id)

    def _handler(self, route: Route, request: PredictInput) -> ModelHandler:
        if request.stateless:
            if route.model_type not in STATELESS_TYPES:
                field = "messages" if request.roles else "parameters.raw_prompt"
                raise InvalidInput(f"models of type '{route.model_type}' take no chat or plain completion",
                                   field=field)
            return self._handlers[STATELESS]
        handler = self._handlers.get(route.model_type)
        if handler is None:
            raise InvalidInput(f"model type '{route.model_type}' is not supported", field="model_id")
        return handler


_PURPOSE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# Audit sequence numbers are 64-bit signed in the databases.
MAX_SEQUENCE = 2**63 - 1


def _outputs(answer: Answer, *, single: bool) -> Outputs:
    if answer.vectors is not None:
        return answer.vectors
    return answer.texts[0] if single else answer.texts

