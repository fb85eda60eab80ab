"""The model catalogue of a worker that serves one engine: list, details, health."""
from __future__ import annotations

from datetime import UTC, datetime

from libs.catalog import NOT_SERVING, SERVING, ModelCard, ModelHealthReport, ModelLimits, SingleModelCatalog
from libs.llm.engine import LLMEngine

BACKEND = "transformers"


class EngineCatalog(SingleModelCatalog):
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

    def describe(self) -> ModelCard:
        engine, loaded = self._engine, self._engine.description
        serving = engine.config.serving
        limits = ModelLimits(
            max_input_tokens=engine.max_prompt_tokens or 0,
            max_new_tokens=serving.max_new_tokens_limit,
            max_batch_size=engine.max_batch_size,
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

    def health_report(self) -> ModelHealthReport:
        admission = self._engine.admission
        return ModelHealthReport(self.model_id, self.status(), admission.running, admission.waiting, datetime.now(UTC))

    def status(self) -> str:
        return SERVING if self._engine.warm else NOT_SERVING


def _configured_quantization(engine: LLMEngine) -> str:
    model = engine.config.model
    return model.quantization_type if model.use_quantization else "none"
