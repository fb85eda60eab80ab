"""The model catalogue in domain terms: one model's entry and health (mirrors medai.common.v1 models.proto).

Every ModelCatalog of the mesh answers with these (a worker for its own model, compliance for all of them);
`libs.rpc.catalog` converts them to and from protobuf. No gRPC here.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from libs.errors import ModelNotFound

# Model types.
TEXT_GENERATION = "text-generation"
EMBEDDING = "embedding"
CONVERSATION = "conversation"
MODEL_TYPES = frozenset({TEXT_GENERATION, EMBEDDING, CONVERSATION})

# A model's status.
SERVING = "SERVING"
NOT_SERVING = "NOT_SERVING"  # loading or warming up
UNAVAILABLE = "UNAVAILABLE"  # its worker cannot be reached


@dataclass(frozen=True)
class ModelLimits:
    """Limits a model enforces on each request; 0 where one does not apply (e.g. max_new_tokens of embeddings)."""

    max_input_tokens: int = 0
    max_new_tokens: int = 0
    max_batch_size: int = 0
    max_concurrent_requests: int = 0
    max_queue: int = 0


@dataclass(frozen=True)
class ModelCard:
    """One model's catalogue entry; load-time fields are zero/empty until the model is loaded."""

    model_id: str
    model_type: str
    model_version: str = ""
    status: str = ""
    source: str = ""
    revision: str = ""
    quantization: str = ""
    device: str = ""
    dtype: str = ""
    parameter_count: int = 0
    memory_bytes: int = 0
    context_length: int = 0
    limits: ModelLimits = field(default_factory=ModelLimits)
    embedding_dimension: int = 0
    backend: str = ""
    description: str = ""
    loaded_at: datetime | None = None


@dataclass(frozen=True)
class ModelHealthReport:
    model_id: str
    status: str
    requests_running: int = 0
    requests_waiting: int = 0
    checked_at: datetime | None = None


class WorkerCatalog(Protocol):
    """What a worker's ModelCatalog servicer serves."""

    def list_models(self, model_type: str = "") -> Sequence[ModelCard]: ...

    def model_info(self, model_id: str) -> ModelCard: ...

    def model_health(self, model_id: str) -> ModelHealthReport: ...


class SingleModelCatalog(ABC):
    """A `WorkerCatalog` of a worker that serves one model: subclasses describe it and report its health."""

    model_type: str

    @property
    @abstractmethod
    def model_id(self) -> str: ...

    @abstractmethod
    def describe(self) -> ModelCard: ...

    @abstractmethod
    def health_report(self) -> ModelHealthReport: ...

    def check_model(self, model_id: str) -> None:
        """ModelNotFound unless model_id names this worker's model (empty means it too)."""
        if model_id and model_id != self.model_id:
            raise ModelNotFound(model_id)

    def list_models(self, model_type: str = "") -> list[ModelCard]:
        return [self.describe()] if model_type in ("", self.model_type) else []

    def model_info(self, model_id: str) -> ModelCard:
        self.check_model(model_id)
        return self.describe()

    def model_health(self, model_id: str) -> ModelHealthReport:
        self.check_model(model_id)
        return self.health_report()
