"""Domain values of the embedding worker (what the mapper converts to and from protobuf)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MODEL_TYPE = "embedding"


@dataclass(frozen=True)
class EmbedRequest:
    """Texts to embed; `inputs` are de-identified but still treated as PHI."""

    model_id: str
    inputs: tuple[str, ...]
    normalize: bool = True
    truncate: bool = True


@dataclass(frozen=True)
class EmbedResult:
    vectors: np.ndarray  # (len(inputs), dimension) float32, same order as the inputs
    prompt_tokens: int
    truncated_inputs: int
    model_version: str


@dataclass(frozen=True)
class ModelLimits:
    max_input_tokens: int
    max_batch_size: int  # inputs per request
    max_concurrent_requests: int  # inputs encoded at once (one forward pass)
    max_queue: int  # requests waiting


@dataclass(frozen=True)
class ModelDescription:
    """One model's catalogue entry; load-time fields are zero/empty until the model is loaded."""

    model_id: str
    model_version: str
    status: str
    source: str
    revision: str
    device: str
    dtype: str
    parameter_count: int
    memory_bytes: int
    context_length: int
    embedding_dimension: int
    backend: str
    limits: ModelLimits
    loaded_at: float | None
    model_type: str = MODEL_TYPE
    quantization: str = "none"
    description: str = "sentence embeddings"


@dataclass(frozen=True)
class ModelHealthReport:
    model_id: str
    status: str
    requests_running: int
    requests_waiting: int
    checked_at: float
