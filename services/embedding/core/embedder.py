"""The embedding worker's core: load and warm the model, validate, batch, describe the model."""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from opentelemetry import trace

from libs.catalog import EMBEDDING, NOT_SERVING, SERVING, ModelCard, ModelHealthReport, ModelLimits, SingleModelCatalog
from libs.config import EmbeddingSettings
from libs.errors import InvalidInput, NotReady
from libs.lifecycle import Readiness
from libs.validation import validate_inputs
from services.embedding.core.batcher import BatchLimits, DynamicBatcher
from services.embedding.core.metrics import EMBED_INPUTS, EMBED_REQUESTS, EMBED_TRUNCATED
from services.embedding.core.model import LoadedModel, LoadOptions, load_model
from services.embedding.core.sources import resolve_source
from services.embedding.core.types import EmbedRequest, EmbedResult

log = logging.getLogger(__name__)

# Up to this many characters a request's texts are tokenized (counted) on the event loop: at most
# a few hundred microseconds; a sentence takes tens, less than a hop to a thread.
INLINE_TOKENIZE_CHARS = 1_000


@dataclass(frozen=True)
class EmbedderConfig:
    model_id: str
    source: str
    revision: str
    load: LoadOptions
    batch: BatchLimits
    max_client_batch_size: int
    max_input_chars: int

    @classmethod
    def from_settings(cls, settings: EmbeddingSettings) -> EmbedderConfig:
        return cls(
            model_id=settings.model_id,
            source=settings.model_source,
            revision=settings.model_revision,
            load=LoadOptions(
                device=settings.model.device,
                dtype=settings.model.dtype,
                backend=settings.backend,
                cache_dir=settings.model.cache_dir,
                trust_remote_code=settings.model.trust_remote_code,
                revision=settings.model_revision,
            ),
            batch=BatchLimits(
                max_batch_size=settings.max_batch_size,
                max_batch_tokens=settings.max_batch_tokens,
                max_wait_seconds=settings.max_batch_wait_ms / 1000,
                max_queue=settings.max_queue_requests,
            ),
            max_client_batch_size=settings.max_client_batch_size,
            max_input_chars=settings.serving.max_input_chars,
        )


def unit_vectors(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


class Embedder(SingleModelCatalog):
    """Serves one embedding model and its catalogue; reports SERVING once it is loaded and warm."""

    model_type = EMBEDDING

    def __init__(self, config: EmbedderConfig, readiness: Readiness) -> None:
        self._config = config
        self._readiness = readiness
        self._model: LoadedModel | None = None
        self._batcher: DynamicBatcher | None = None

    @property
    def model_id(self) -> str:
        return self._config.model_id

    async def start(self) -> None:
        """Load and warm the model (in a thread), start the batch loop, then report SERVING."""
        started = time.perf_counter()
        source = resolve_source(self._config.source, self._config.revision)
        model = await asyncio.to_thread(load_model, source, self._config.load)
        await asyncio.to_thread(model.warm_up)
        batcher = DynamicBatcher(model.encode, self._config.batch, self.model_id)
        batcher.start()
        self._model, self._batcher = model, batcher
        await self._readiness.set_serving(True)
        log.info("model %s loaded from a %s source with the %s backend on %s in %.2fs%s", self.model_id,
                 source.kind, model.backend, model.device, time.perf_counter() - started,
                 " (exported into the model cache)" if model.exported else "")

    async def stop(self) -> None:
        if self._batcher is not None:
            await self._batcher.stop()

    async def embed(self, request: EmbedRequest) -> EmbedResult:
        self.check_model(request.model_id)
        model, batcher = self._serving()
        EMBED_REQUESTS.labels(self.model_id).inc()
        texts = validate_inputs(list(request.inputs), max_items=self._config.max_client_batch_size,
                                max_chars=self._config.max_input_chars)
        batcher.check_capacity()
        lengths = await self._count_tokens(model, texts)
        limit = model.max_seq_length
        over = [index for index, length in enumerate(lengths) if length > limit]
        if over and not request.truncate:
            raise InvalidInput(f"longer than the model's limit of {limit} tokens (truncate is false)",
                               field=f"inputs[{over[0]}]")
        kept = [min(length, limit) for length in lengths]
        vectors = await batcher.submit(texts, kept)
        if request.normalize:
            vectors = unit_vectors(vectors)
        self._record(len(texts), len(over))
        return EmbedResult(vectors, sum(kept), len(over), model.version)

    @staticmethod
    async def _count_tokens(model: LoadedModel, texts: list[str]) -> list[int]:
        """Short inputs (the common case) are tokenized at once; long ones off the event loop."""
        if sum(map(len, texts)) <= INLINE_TOKENIZE_CHARS:
            return model.count_tokens(texts)
        return await asyncio.to_thread(model.count_tokens, texts)

    def health_report(self) -> ModelHealthReport:
        batcher = self._batcher
        return ModelHealthReport(
            model_id=self.model_id,
            status=self._status(),
            requests_running=batcher.running if batcher else 0,
            requests_waiting=batcher.waiting if batcher else 0,
            checked_at=datetime.now(UTC),
        )

    def describe(self) -> ModelCard:
        model, config = self._model, self._config
        return ModelCard(
            model_id=self.model_id,
            model_type=EMBEDDING,
            model_version=model.version if model else "",
            status=self._status(),
            source=config.source,
            revision=config.revision,
            quantization="none",
            device=model.device if model else "",
            dtype=model.dtype if model else "",
            parameter_count=model.parameter_count if model else 0,
            memory_bytes=model.memory_bytes if model else 0,
            context_length=model.max_seq_length if model else 0,
            embedding_dimension=model.dimension if model else 0,
            backend=model.backend if model else "",
            description="sentence embeddings",
            limits=ModelLimits(
                max_input_tokens=model.max_seq_length if model else 0,
                max_batch_size=config.max_client_batch_size,
                max_concurrent_requests=config.batch.max_batch_size,
                max_queue=config.batch.max_queue,
            ),
            loaded_at=model.loaded_at if model else None,
        )

    def _status(self) -> str:
        return SERVING if self._batcher is not None else NOT_SERVING

    def _serving(self) -> tuple[LoadedModel, DynamicBatcher]:
        if self._model is None or self._batcher is None:
            raise NotReady(f"model '{self.model_id}' is loading")
        return self._model, self._batcher

    def _record(self, inputs: int, truncated: int) -> None:
        EMBED_INPUTS.labels(self.model_id).inc(inputs)
        EMBED_TRUNCATED.labels(self.model_id).inc(truncated)
        trace.get_current_span().set_attributes({"medai.embed.inputs": inputs, "medai.embed.truncated": truncated})
