"""Chat turns over the shared engine, with history kept in an owner-scoped session store."""
from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from libs.catalog import CONVERSATION
from libs.config import ConversationSettings
from libs.errors import InvalidInput, NotReady
from libs.lifecycle import Readiness
from libs.llm.catalog import EngineCatalog
from libs.llm.chat import ChatTemplate
from libs.llm.engine import LLMEngine
from libs.llm.sources import ModelSourceError
from libs.llm.types import Completion, TextDelta
from libs.stores.sessions import Session, SessionStore, Turn, new_session_id
from libs.validation import GenerationParams, validate_inputs, validate_session_id
from services.conversation.core.context import fit_prompt

MAX_OWNER_CHARS = 256


@dataclass(frozen=True)
class ChatCommand:
    model_id: str
    session_id: str  # the session to continue, or to start under this name; empty: a new server-issued one
    owner: str
    message: str
    system_prompt: str | None  # None: the session's, or the configured default
    params: GenerationParams


@dataclass(frozen=True)
class ChatDelta:
    session_id: str
    delta: TextDelta
    turns: int | None = None  # turns stored after this reply; on the last delta only


@dataclass(frozen=True)
class ChatReply:
    session_id: str
    completion: Completion
    turns: int


@dataclass(frozen=True)
class _PreparedTurn:
    session_id: str
    system_prompt: str | None
    token_ids: list[int]


class ConversationCore:
    """Serves Chat / ChatStream / DeleteSession and reports readiness once the model is warm."""

    def __init__(self, settings: ConversationSettings, engine: LLMEngine, store: SessionStore,
                 readiness: Readiness) -> None:
        self._settings = settings
        self._engine = engine
        self._store = store
        self._readiness = readiness
        self.catalog = EngineCatalog(engine, CONVERSATION)

    @property
    def model_version(self) -> str:
        return self.catalog.model_version

    async def start(self) -> None:
        """Load and warm the model, then report SERVING; a model without a chat template fails the startup."""
        await self._engine.start()
        self._chat_template()
        await self._readiness.set_serving(True)

    async def stop(self) -> None:
        await self._engine.close()
        await self._store.close()

    async def chat(self, command: ChatCommand) -> ChatReply:
        parts: list[str] = []
        async with contextlib.aclosing(self.chat_stream(command)) as deltas:
            async for item in deltas:
                parts.append(item.delta.text)
                delta = item.delta
                if delta.finish_reason is not None and delta.usage is not None:
                    completion = Completion("".join(parts), delta.finish_reason, delta.usage)
                    return ChatReply(item.session_id, completion, item.turns or 0)
        raise NotReady("generation ended without a result")  # only if the engine stopped mid-way

    async def chat_stream(self, command: ChatCommand) -> AsyncGenerator[ChatDelta, None]:
        """The reply as deltas; the turn is stored before the last delta is handed out."""
        prepared = await self._prepare(command)
        parts: list[str] = []
        async with contextlib.aclosing(self._engine.stream(prepared.token_ids, command.params)) as deltas:
            async for delta in deltas:
                parts.append(delta.text)
                if not delta.final:
                    yield ChatDelta(prepared.session_id, delta)
                    continue
                turns = None
                if delta.finish_reason != "cancelled":
                    session = await self._store.append(prepared.session_id, command.owner,
                                                       Turn(command.message, "".join(parts)), prepared.system_prompt)
                    turns = len(session.turns)
                yield ChatDelta(prepared.session_id, delta, turns)

    async def delete(self, session_id: str, owner: str) -> bool:
        _check_owner(owner)
        return bool(session_id) and await self._store.delete(session_id, owner)

    async def _prepare(self, command: ChatCommand) -> _PreparedTurn:
        self.catalog.check_model(command.model_id)
        self._engine.require_loaded()
        _check_owner(command.owner)
        validate_inputs(command.message, max_items=1, max_chars=self._settings.serving.max_input_chars)
        self._engine.validate(command.params)
        session = await self._session(command.session_id, command.owner)
        system_prompt = command.system_prompt
        if system_prompt is None:
            system_prompt = session.system_prompt if session else self._settings.system_prompt
        fitted = fit_prompt(self._chat_template(), system_prompt or None, session.turns if session else (),
                            command.message, self._prompt_budget(command.params))
        return _PreparedTurn(command.session_id or new_session_id(), system_prompt, fitted.token_ids)

    async def _session(self, session_id: str, owner: str) -> Session | None:
        """The owner's session of that name so far (None: it starts now, under the name the client chose
        or a new server-issued one). Asks the store either way, so a store that is down fails the turn
        before any token is generated, not after."""
        validate_session_id(session_id)
        if not session_id:
            await self._store.check()
            return None
        return await self._store.get(session_id, owner)

    def _prompt_budget(self, params: GenerationParams) -> int:
        """Prompt tokens allowed: the context window less room for the reply (at most half of it)."""
        window = self._engine.max_prompt_tokens or 0
        return window - min(self._engine.requested_new_tokens(params), window // 2)

    def _chat_template(self) -> ChatTemplate:
        if self._engine.chat is None:
            raise ModelSourceError("the conversation model has no chat template")
        return self._engine.chat


def _check_owner(owner: str) -> None:
    if not owner or len(owner) > MAX_OWNER_CHARS:
        raise InvalidInput(f"must name the session owner (1 to {MAX_OWNER_CHARS} characters)", field="owner")
