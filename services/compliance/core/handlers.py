"""One handler per model type: its checks, how it calls its worker, and what it answers.

The proxy picks a handler from `build_handlers()`'s table by the model's type.
Texts reaching a handler are already de-identified.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Iterable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from libs.catalog import CONVERSATION, EMBEDDING, TEXT_GENERATION
from libs.errors import InvalidInput
from libs.validation import validate_generation_params
from services.compliance.core.ports import ConversationClient, EmbeddingClient, GenerationClient, WorkerClients
from services.compliance.core.registry import Route
from services.compliance.core.types import (
    Caller,
    ChatCall,
    ChatChunk,
    EmbedCall,
    GenerateCall,
    PredictInput,
    Usage,
)

T = TypeVar("T")


@dataclass(frozen=True)
class ModelCall:
    """One predict call as a handler sees it: inputs (and system prompt) already redacted."""

    caller: Caller
    route: Route
    request: PredictInput
    texts: list[str]
    system_prompt: str | None = None
    timeout: float | None = None

    @property
    def model_id(self) -> str:
        return self.route.info.model_id


@dataclass(frozen=True)
class Answer:
    """What a worker answered, before it is shaped into the public response."""

    texts: list[str] = field(default_factory=list)
    vectors: list[list[float]] | None = None
    usage: Usage = field(default_factory=Usage)
    finish_reason: str = ""
    model_version: str = ""
    truncated_inputs: int = 0
    session_id: str = ""


class ModelHandler(Protocol):
    streams: bool
    takes_system_prompt: bool

    def check(self, caller: Caller, request: PredictInput, texts: list[str], route: Route) -> None:
        """Raise InvalidInput for a request this model type cannot take."""

    async def predict(self, call: ModelCall) -> Answer: ...

    def stream(self, call: ModelCall) -> AsyncIterator[ChatChunk]: ...


class TextGenerationHandler:
    """One Generate per input, all at once; a chat sent whole is one Generate of its messages. Also
    serves stateless calls (a chat, a plain completion) on conversation models."""

    streams = True
    takes_system_prompt = False

    def __init__(self, workers: GenerationClient) -> None:
        self._workers = workers

    def check(self, caller: Caller, request: PredictInput, texts: list[str], route: Route) -> None:
        validate_generation_params(request.params, route.info.limits.max_new_tokens or None)

    async def predict(self, call: ModelCall) -> Answer:
        prompts = [""] if call.request.roles else call.texts
        results = await _all(self._workers.generate(call.route.address, _generate_call(call, text), call.timeout)
                             for text in prompts)
        return Answer(
            texts=[result.text for result in results],
            usage=Usage(sum(r.usage.prompt_tokens for r in results), sum(r.usage.generated_tokens for r in results)),
            finish_reason=results[0].finish_reason,
            model_version=results[0].model_version,
        )

    async def stream(self, call: ModelCall) -> AsyncIterator[ChatChunk]:
        prompt = "" if call.request.roles else call.texts[0]
        async for chunk in self._workers.generate_stream(call.route.address, _generate_call(call, prompt),
                                                         call.timeout):
            yield ChatChunk(session_id="", chunk=chunk)


class EmbeddingHandler:
    """One Embed with every input."""

    streams = False
    takes_system_prompt = False

    def __init__(self, workers: EmbeddingClient) -> None:
        self._workers = workers

    def check(self, caller: Caller, request: PredictInput, texts: list[str], route: Route) -> None:
        limit = route.info.limits.max_batch_size
        if limit and len(texts) > limit:
            raise InvalidInput(f"at most {limit} items for this model", field="inputs")

    async def predict(self, call: ModelCall) -> Answer:
        request = call.request
        embedded = await self._workers.embed(
            call.route.address,
            EmbedCall(call.caller.request_id, call.model_id, tuple(call.texts), request.normalize, request.truncate),
            call.timeout,
        )
        return Answer(vectors=embedded.embeddings, usage=Usage(prompt_tokens=embedded.prompt_tokens),
                      model_version=embedded.model_version, truncated_inputs=embedded.truncated_inputs)

    def stream(self, call: ModelCall) -> AsyncIterator[ChatChunk]:
        raise InvalidInput("embedding models do not stream", field="model_id")


class ConversationHandler:
    """A Chat turn in the caller's session (owner = the caller's principal)."""

    streams = True
    takes_system_prompt = True

    def __init__(self, workers: ConversationClient) -> None:
        self._workers = workers

    def check(self, caller: Caller, request: PredictInput, texts: list[str], route: Route) -> None:
        if not isinstance(request.inputs, str):
            raise InvalidInput("conversation models take a single string", field="inputs")
        if not caller.principal_id:
            raise InvalidInput("is required for conversation models", field="caller.principal_id")
        validate_generation_params(request.params, route.info.limits.max_new_tokens or None)

    async def predict(self, call: ModelCall) -> Answer:
        reply = await self._workers.chat(call.route.address, _chat_call(call), call.timeout)
        return Answer(texts=[reply.reply.text], usage=reply.reply.usage, finish_reason=reply.reply.finish_reason,
                      model_version=reply.reply.model_version, session_id=reply.session_id)

    async def stream(self, call: ModelCall) -> AsyncIterator[ChatChunk]:
        async for chunk in self._workers.chat_stream(call.route.address, _chat_call(call), call.timeout):
            yield chunk


# The handler key of stateless calls (a chat sent whole, a plain completion), whatever the model type.
STATELESS = "stateless"
# Model types that take stateless calls.
STATELESS_TYPES = frozenset({TEXT_GENERATION, CONVERSATION})


def build_handlers(workers: WorkerClients) -> dict[str, ModelHandler]:
    """model_type (or STATELESS) -> handler."""
    return {
        TEXT_GENERATION: TextGenerationHandler(workers),
        EMBEDDING: EmbeddingHandler(workers),
        CONVERSATION: ConversationHandler(workers),
        STATELESS: TextGenerationHandler(workers),
    }


def _generate_call(call: ModelCall, prompt: str) -> GenerateCall:
    request = call.request
    messages = tuple(zip(request.roles, call.texts, strict=True)) if request.roles else ()
    return GenerateCall(call.caller.request_id, call.model_id, prompt, request.params, messages=messages,
                        raw_prompt=request.raw_prompt)


def _chat_call(call: ModelCall) -> ChatCall:
    return ChatCall(
        request_id=call.caller.request_id, model_id=call.model_id, session_id=call.request.session_id,
        owner=call.caller.principal_id, message=call.texts[0], params=call.request.params,
        system_prompt=call.system_prompt,
    )


async def _all(calls: Iterable[Awaitable[T]]) -> list[T]:
    """Await all concurrently; on the first failure cancel the rest and raise it."""
    tasks = [asyncio.ensure_future(call) for call in calls]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()
