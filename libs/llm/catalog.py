"""The model catalogue of a worker that serves one engine: list, details, health."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from libs.errors import ModelNotFound
from libs.llm.engine import LLMEngine

SERVING = "SERVING"
NOT_SERVING = "NOT_SERVING"
BACKEND = "transformers"


@dataclass(frozen=True)
class ModelLimits:
    max_input_tokens: int
    max_new_tokens: int
    max_batch_size: int
    max_concurrent_requests: int
    max_queue: int


@dataclass(frozen=True)
class ModelCard:
    """One model's details; load-time fields are empty until the model is loaded."""

    model_id: str
    model_type: str
    model_version: str
    status: str
    source: str
    revision: str
    quantization: str
    device: str
    dtype: str
    parameter_count: int
    memory_bytes: int
    context_length: int
    limits: ModelLimits
    backend: str
    description: str
    loaded_at: datetime | None


@dataclass(frozen=True)
class ModelHealthReport:
    model_id: str
    status: str
    requests_running: int
    requests_waiting: int
    checked_at: datetime


class EngineCatalog:
    """Answers catalogue questions about the engine's one model."""

    def __init__(self, engine: LLMEngine, model_type: str, description: str = "") -> None:
        self._engine = engine
        self.model_type = model_type
        self._description = description

    @property
    def model_id(self) -> str:
        return self._engine.model_id

    @property
    def model_version(self) -> str:
        loaded = self._engine.description
        return loaded.revision if loaded else self._engine.config.revision

    def check_model(self, model_id: str) -> None:
        """ModelNotFound unless model_id names this worker's model (empty means it too)."""
        if model_id and model_id != self.model_id:
            raise ModelNotFound(model_id)

    def list_models(self, model_type: str = "") -> list[ModelCard]:
        return [self.model_info(self.model_id)] if model_type in ("", self.model_type) else []

    def model_info(self, model_id: str) -> ModelCard:
        self.check_model(model_id)
        engine, loaded = self._engine, self._engine.description
        serving = engine.config.serving
        limits = ModelLimits(
            max_input_tokens=engine.max_prompt_tokens or 0,
            max_new_tokens=serving.max_new_tokens_limit,
            max_batch_size=1,  # one sequence per forward pass until continuous batching lands
            max_concurrent_requests=serving.max_concurrent_requests,
            max_queue=serving.max_queue,
        )
        return ModelCard(
            model_id=self.model_id, model_type=self.model_type, model_version=self.model_version,
            status=self.status(), source=engine.config.source, revision=self.model_version,
            quantization=loaded.quantization if loaded else _configured_quantization(engine),
            device=loaded.device if loaded else "", dtype=loaded.dtype if loaded else "",
            parameter_count=loaded.parameter_count if loaded else 0,
            memory_bytes=loaded.memory_bytes if loaded else 0,
            context_length=loaded.context_length if loaded else 0,
            limits=limits, backend=BACKEND, description=self._description,
            loaded_at=loaded.loaded_at if loaded else None,
        )

    def model_health(self, model_id: str) -> ModelHealthReport:
        self.check_model(model_id)
        admission = self._engine.admission
        return ModelHealthReport(self.model_id, self.status(), admission.running, admission.waiting, datetime.now(UTC))

    def status(self) -> str:
        return SERVING if self._engine.warm else NOT_SERVING


def _configured_quantization(engine: LLMEngine) -> str:
    model = engine.config.model
    return model.quantization_type if model.use_quantization else "none"
