"""The OpenAI-compatible API as gateway calls: OpenAI's requests become the mesh's predict calls (a chat
sent whole, a plain completion, embeddings), so they take the very same path (authentication, limits,
validation, compliance, audit). A request the mesh cannot serve as asked is refused by the OpenAI
parameter's name, never silently changed; refusals surface after authentication (`PredictCall.invalid`).
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from libs.errors import InvalidInput
from libs.validation import GenerationParams
from services.gateway.core.gateway import Gateway
from services.gateway.core.model import CallMetadata, PredictCall

CHAT_ROLES = ("system", "user", "assistant")
ENCODING_FORMATS = ("float", "base64")

# Parameters the mesh does not support, and the values that mean "not used" (accepted as sent).
UNSUPPORTED_DEFAULTS: dict[str, tuple[Any, ...]] = {
    "frequency_penalty": (None, 0, 0.0), "presence_penalty": (None, 0, 0.0), "logprobs": (None, False, 0),
    "top_logprobs": (None, 0), "tools": (None, []), "tool_choice": (None, "none", "auto"),
    "response_format": (None, {"type": "text"}), "logit_bias": (None, {}), "echo": (None, False),
    "suffix": (None, ""), "best_of": (None, 1),
}


@dataclass(frozen=True)
class Sampling:
    """The decoding parameters OpenAI's create calls share (as sent; None: not sent)."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: Any = None
    seed: int | None = None
    n: int | None = None


@dataclass(frozen=True)
class OpenAIChat:
    model: str
    messages: list[tuple[str, Any]]  # (role, content as sent)
    sampling: Sampling = Sampling()
    user: str = ""
    include_usage: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)  # parameters the mesh does not support, as sent


@dataclass(frozen=True)
class OpenAICompletion:
    model: str
    prompt: Any
    sampling: Sampling = Sampling()
    user: str = ""
    include_usage: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OpenAIEmbedding:
    model: str
    input: Any
    encoding_format: str = ""
    dimensions: int | None = None
    user: str = ""


def chat_call(request: OpenAIChat) -> PredictCall:
    """The chat as a stateless chat predict: every message's content, their roles alongside."""
    problem = _unsupported(request.extra) or _sampling_problem(request.sampling)
    roles: list[str] = []
    contents: list[Any] = []
    for index, (role, content) in enumerate(request.messages):
        if problem is None and role not in CHAT_ROLES:
            problem = InvalidInput("must be system, user or assistant", field=f"messages[{index}].role")
        if problem is None and not isinstance(content, str):
            problem = InvalidInput("must be a string (content parts are not supported)",
                                   field=f"messages[{index}].content")
        roles.append(role)
        contents.append(content if isinstance(content, str) else "")
    if problem is None and not request.messages:
        problem = InvalidInput("must hold at least one message", field="messages")
    return PredictCall(model_id=request.model, inputs=contents, roles=tuple(roles),
                       params=_params(request.sampling), user_id=request.user, invalid=problem)


def completion_call(request: OpenAICompletion) -> PredictCall:
    """The completion as a plain (raw prompt) predict of each prompt."""
    problem = _unsupported(request.extra) or _sampling_problem(request.sampling)
    prompt = request.prompt
    if problem is None and not (isinstance(prompt, str) or (isinstance(prompt, list) and prompt
                                                             and all(isinstance(p, str) for p in prompt))):
        problem = InvalidInput("must be a string or a list of strings (token arrays are not supported)",
                               field="prompt")
    return PredictCall(model_id=request.model, inputs=prompt if problem is None else "", raw_prompt=True,
                       params=_params(request.sampling), user_id=request.user, invalid=problem)


def embedding_call(request: OpenAIEmbedding) -> PredictCall:
    problem = None
    value = request.input
    if not (isinstance(value, str) or (isinstance(value, list) and value and all(isinstance(v, str) for v in value))):
        problem = InvalidInput("must be a string or a list of strings (token arrays are not supported)",
                               field="input")
    elif request.encoding_format not in ("", *ENCODING_FORMATS):
        problem = InvalidInput("must be float or base64", field="encoding_format")
    return PredictCall(model_id=request.model, inputs=value if problem is None else "", params=GenerationParams(),
                       user_id=request.user, dimensions=request.dimensions, invalid=problem)


def _unsupported(extra: Mapping[str, Any]) -> InvalidInput | None:
    for name, value in extra.items():
        if value not in UNSUPPORTED_DEFAULTS.get(name, (None,)):
            return InvalidInput("is not supported by this server", field=name)
    return None


def _sampling_problem(sampling: Sampling) -> InvalidInput | None:
    if sampling.n not in (None, 1):
        return InvalidInput("only 1 is supported", field="n")
    stop = sampling.stop
    if stop is not None and not isinstance(stop, str) and not (
            isinstance(stop, list) and all(isinstance(item, str) for item in stop)):
        return InvalidInput("must be a string or a list of strings", field="stop")
    return None


def _params(sampling: Sampling) -> GenerationParams:
    stop = sampling.stop
    stops = (stop,) if isinstance(stop, str) else tuple(s for s in stop or () if isinstance(s, str))
    return GenerationParams(max_new_tokens=sampling.max_tokens, temperature=sampling.temperature,
                            top_p=sampling.top_p, stop=stops, seed=sampling.seed)


class OpenAIApi:
    """The OpenAI routes over the gateway's use cases; answers are the gateway's (shaped by the servicer)."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    async def chat(self, meta: CallMetadata, request: OpenAIChat) -> Any:
        return await self._gateway.predict(meta, chat_call(request))

    def chat_stream(self, meta: CallMetadata, request: OpenAIChat) -> AsyncIterator[Any]:
        return self._gateway.predict_stream(meta, chat_call(request))

    async def completion(self, meta: CallMetadata, request: OpenAICompletion) -> Any:
        return await self._gateway.predict(meta, completion_call(request))

    def completion_stream(self, meta: CallMetadata, request: OpenAICompletion) -> AsyncIterator[Any]:
        return self._gateway.predict_stream(meta, completion_call(request))

    async def embeddings(self, meta: CallMetadata, request: OpenAIEmbedding) -> Any:
        return await self._gateway.predict(meta, embedding_call(request))

    async def models(self, meta: CallMetadata) -> list[Any]:
        return await self._gateway.list_models(meta, "")

    async def model(self, meta: CallMetadata, model_id: str) -> Any:
        return await self._gateway.model_info(meta, model_id)
