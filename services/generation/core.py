"""Generation domain: prompt preparation and validation around the shared engine (no gRPC here)."""
from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass

from libs.catalog import TEXT_GENERATION
from libs.config import GenerationSettings
from libs.lifecycle import Readiness
from libs.llm.catalog import EngineCatalog
from libs.llm.engine import LLMEngine
from libs.llm.types import ChatMessage, Completion, Prompt, TextDelta
from libs.validation import GenerationParams, validate_inputs


@dataclass(frozen=True)
class GenerateCommand:
    model_id: str
    prompt: str
    params: GenerationParams


class GenerationCore:
    """Serves Generate / GenerateStream for the engine's model and reports readiness once it is warm."""

    def __init__(self, settings: GenerationSettings, engine: LLMEngine, readiness: Readiness) -> None:
        self._settings = settings
        self._engine = engine
        self._readiness = readiness
        self.catalog = EngineCatalog(engine, TEXT_GENERATION)

    @property
    def model_version(self) -> str:
        return self.catalog.model_version

    async def start(self) -> None:
        """Load and warm the model (minutes at worst), then report SERVING."""
        await self._engine.start()
        await self._readiness.set_serving(True)

    async def stop(self) -> None:
        await self._engine.close()

    async def generate(self, command: GenerateCommand) -> Completion:
        return await self._engine.complete(self._prompt(command), command.params)

    def generate_stream(self, command: GenerateCommand) -> AsyncGenerator[TextDelta, None]:
        """Text deltas; the last carries finish_reason and usage. Closing it cancels the generation."""
        return self._engine.stream(self._prompt(command), command.params)

    def _prompt(self, command: GenerateCommand) -> Prompt:
        self.catalog.check_model(command.model_id)
        validate_inputs(command.prompt, max_items=1, max_chars=self._settings.serving.max_input_chars)
        chat = self._engine.chat
        if self._settings.apply_chat_template and chat is not None:
            return chat.encode([ChatMessage("user", command.prompt)])
        return command.prompt
