"""Generation domain: prompt preparation and validation around the shared engine (no gRPC here)."""
from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass

from libs.catalog import TEXT_GENERATION
from libs.config import GenerationSettings
from libs.errors import InvalidInput
from libs.lifecycle import Readiness
from libs.llm.catalog import EngineCatalog
from libs.llm.engine import LLMEngine
from libs.llm.types import ChatMessage, Completion, Prompt, TextDelta
from libs.validation import GenerationParams, validate_inputs

CHAT_ROLES = frozenset({"system", "user", "assistant"})


@dataclass(frozen=True)
class GenerateCommand:
    model_id: str
    prompt: str
    params: GenerationParams
    # A whole chat (replaces prompt), put in the model's chat template.
    messages: tuple[ChatMessage, ...] = ()
    # The prompt as it is, never in the chat template (a plain completion).
    raw_prompt: bool = False


class PromptCompleter:
    """Generate / GenerateStream over an engine: a prompt (in the chat template when the worker is set to),
    a raw prompt, or a whole chat. The generation worker serves it; the conversation worker too, for
    stateless chats (the client sends the history)."""

    def __init__(self, engine: LLMEngine, catalog: EngineCatalog, *, max_input_chars: int,
                 apply_chat_template: bool) -> None:
        self._engine = engine
        self.catalog = catalog
        self._max_input_chars = max_input_chars
        self._apply_chat_template = apply_chat_template

    @property
    def model_version(self) -> str:
        return self.catalog.model_version

    async def generate(self, command: GenerateCommand) -> Completion:
        return await self._engine.complete(self._prompt(command), command.params)

    def generate_stream(self, command: GenerateCommand) -> AsyncGenerator[TextDelta, None]:
        """Text deltas; the last carries finish_reason and usage. Closing it cancels the generation."""
        return self._engine.stream(self._prompt(command), command.params)

    def _prompt(self, command: GenerateCommand) -> Prompt:
        self.catalog.check_model(command.model_id)
        if command.messages:
            return self._chat_prompt(command.messages)
        validate_inputs(command.prompt, max_items=1, max_chars=self._max_input_chars)
        chat = self._engine.chat
        if self._apply_chat_template and not command.raw_prompt and chat is not None:
            return chat.encode([ChatMessage("user", command.prompt)])
        return command.prompt

    def _chat_prompt(self, messages: tuple[ChatMessage, ...]) -> Prompt:
        chat = self._engine.chat
        if chat is None:
            raise InvalidInput("this model has no chat template; send a prompt", field="messages")
        for index, message in enumerate(messages):
            if message.role not in CHAT_ROLES:
                raise InvalidInput("must be system, user or assistant", field=f"messages[{index}].role")
        if sum(len(message.content) for message in messages) > self._max_input_chars:
            raise InvalidInput(f"longer than {self._max_input_chars} characters in all", field="messages")
        return chat.encode(list(messages))


class GenerationCore(PromptCompleter):
    """The generation worker: its model loaded and warmed before it reports SERVING."""

    def __init__(self, settings: GenerationSettings, engine: LLMEngine, readiness: Readiness) -> None:
        super().__init__(engine, EngineCatalog(engine, TEXT_GENERATION),
                         max_input_chars=settings.serving.max_input_chars,
                         apply_chat_template=settings.apply_chat_template)
        self._readiness = readiness

    async def start(self) -> None:
        """Load and warm the model (minutes at worst), then report SERVING."""
        await self._engine.start()
        await self._readiness.set_serving(True)

    async def stop(self) -> None:
        await self._engine.close()
