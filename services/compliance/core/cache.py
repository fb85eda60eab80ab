"""Response cache, after de-identification: deterministic answers keyed on the redacted call.

Only deterministic calls are cached: embeddings, and text generation that is greedy or seeded
(conversations depend on their session and are never cached). The key is a keyed hash (HMAC-SHA256
with the server pepper) of the model id, model version and type, every parameter and the redacted
texts, so neither keys nor values hold PHI: values are answers whose texts were de-identified
(the proxy stores generated text only when output redaction is on). Store failures count as misses.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Protocol

import numpy
from prometheus_client import Counter

from libs.catalog import CONVERSATION, EMBEDDING, TEXT_GENERATION
from services.compliance.core.handlers import Answer, ModelCall
from services.compliance.core.types import Usage

log = logging.getLogger(__name__)

CACHE_HITS = Counter("medai_response_cache_hits_total", "Predict answers served from the response cache",
                     ["model_id"])
CACHE_MISSES = Counter("medai_response_cache_misses_total",
                       "Cacheable predict calls that the response cache could not answer", ["model_id"])
CACHE_ERRORS = Counter("medai_response_cache_errors_total", "Response cache store calls that failed", ["operation"])
KEY_VERSION = 2
RETRY_SECONDS = 5.0


class CacheStore(Protocol):
    """`libs.stores.cache` (Redis or in-process)."""

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes) -> None: ...

    async def close(self) -> None: ...


def cacheable(call: ModelCall) -> bool:
    """Embeddings, and greedy or seeded generation (also stateless calls on a conversation model)."""
    model_type, request = call.route.model_type, call.request
    generates = model_type == TEXT_GENERATION or (model_type == CONVERSATION and request.stateless)
    return model_type == EMBEDDING or (generates and request.params.deterministic)


class ResponseCache:
    """After a store failure the store is left alone for `retry_seconds` (every call a miss), so a
    Redis that hangs costs one timeout, not one per call."""

    def __init__(self, store: CacheStore, pepper: bytes, retry_seconds: float = RETRY_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._pepper = pepper
        self._retry_seconds = retry_seconds
        self._clock = clock
        self._down_until = -math.inf

    def key_for(self, call: ModelCall) -> str | None:
        """The call's cache key, or None when it must not be cached."""
        if not cacheable(call):
            return None
        request, info = call.request, call.route.info
        material = {
            "v": KEY_VERSION, "model_id": info.model_id, "model_version": info.model_version,
            "model_type": info.model_type, "params": asdict(request.params), "normalize": request.normalize,
            "truncate": request.truncate, "system_prompt": call.system_prompt, "texts": call.texts,
            "roles": list(request.roles), "raw_prompt": request.raw_prompt,
        }
        encoded = json.dumps(material, sort_keys=True, separators=(",", ":")).encode()
        return hmac.new(self._pepper, encoded, hashlib.sha256).hexdigest()

    async def get(self, key: str | None, model_id: str) -> Answer | None:
        """The cached answer, or None (not cacheable, absent, or the store failed)."""
        if key is None:
            return None
        value = None
        if self._clock() >= self._down_until:
            try:
                value = await self._store.get(key)
            except Exception as error:  # a cache outage must never fail a call
                self._failed("get", error)
        (CACHE_HITS if value is not None else CACHE_MISSES).labels(model_id).inc()
        return decode_answer(value) if value is not None else None

    async def put(self, key: str | None, answer: Answer) -> None:
        if key is None or self._clock() < self._down_until:
            return
        try:
            await self._store.set(key, encode_answer(answer))
        except Exception as error:
            self._failed("set", error)

    async def close(self) -> None:
        await self._store.close()

    def _failed(self, operation: str, error: Exception) -> None:
        CACHE_ERRORS.labels(operation).inc()
        log.warning("response cache unavailable", extra={"operation": operation, "error": type(error).__name__,
                                                         "retry_seconds": self._retry_seconds})
        self._down_until = self._clock() + self._retry_seconds


def encode_answer(answer: Answer) -> bytes:
    """The answer's fields the cache keeps (never a session id: conversations are not cached). Vectors as
    little-endian float32 in base64: what the worker sent (its vectors are float32), without writing each
    number out in decimal."""
    vectors = None if answer.vectors is None else [_packed(vector) for vector in answer.vectors]
    return json.dumps({
        "texts": answer.texts, "vectors": vectors, "finish_reason": answer.finish_reason,
        "usage": [answer.usage.prompt_tokens, answer.usage.generated_tokens], "model_version": answer.model_version,
        "truncated_inputs": answer.truncated_inputs,
    }, separators=(",", ":")).encode()


def decode_answer(value: bytes) -> Answer:
    data = json.loads(value)
    prompt_tokens, generated_tokens = data["usage"]
    vectors = None if data["vectors"] is None else [_unpacked(vector) for vector in data["vectors"]]
    return Answer(texts=data["texts"], vectors=vectors, usage=Usage(prompt_tokens, generated_tokens),
                  finish_reason=data["finish_reason"], model_version=data["model_version"],
                  truncated_inputs=data["truncated_inputs"])


def _packed(vector: list[float]) -> str:
    return base64.b64encode(numpy.asarray(vector, dtype="<f4").tobytes()).decode()


def _unpacked(vector: str | list[float]) -> list[float]:
    """A cached vector (entries written before vectors were packed hold plain lists)."""
    return vector if isinstance(vector, list) else numpy.frombuffer(base64.b64decode(vector), dtype="<f4").tolist()
