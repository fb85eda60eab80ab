"""PHI de-identification: find PHI spans and replace them with typed numbered placeholders.

A `Deidentifier` finds spans (CPU-bound, synchronous; Presidio's is in `presidio.py`); the
`Redactor` runs it in a thread pool, applies the policy (score threshold, PHI types kept),
resolves overlapping spans and substitutes `[PERSON_1]`-
style placeholders that are stable within one request (`PlaceholderMap`). The placeholder -> value mapping stays in
memory for the request only (re-identification, a later issue, reads it); it is never logged.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Protocol

from libs.errors import NotReady
from services.compliance.core.types import DetectedEntity, Redaction
from services.compliance.metrics import DEIDENTIFY_SECONDS, PHI_ENTITIES_DETECTED

WARMUP_TEXT = "Patient Jane Roe, phone 555-010-4477, email jane.roe@example.org, seen on 2024-03-01."


class Deidentifier(Protocol):
    """Finds PHI spans in texts. Synchronous and CPU-bound: the Redactor calls it from a thread."""

    def analyze(self, texts: Sequence[str]) -> list[list[DetectedEntity]]: ...


class DisabledDeidentifier:
    """Finds nothing (MEDICAL_PHI_DETECTION_ENABLED=false)."""

    def analyze(self, texts: Sequence[str]) -> list[list[DetectedEntity]]:
        return [[] for _ in texts]


@dataclass(frozen=True)
class RedactionPolicy:
    """Which spans are replaced: scored at least `score_threshold`, of a type not in `allowed_types`."""

    score_threshold: float = 0.35
    allowed_types: frozenset[str] = frozenset()

    def applies_to(self, entity: DetectedEntity) -> bool:
        return entity.score >= self.score_threshold and entity.entity_type not in self.allowed_types


class PlaceholderMap:
    """Placeholders of one request: the same (type, value) always gets the same `[TYPE_n]`."""

    def __init__(self) -> None:
        self._by_value: dict[tuple[str, str], str] = {}
        self._counts: dict[str, int] = {}
        self._values: dict[str, str] = {}

    def placeholder_for(self, entity_type: str, value: str) -> str:
        key = (entity_type, value)
        if key not in self._by_value:
            self._counts[entity_type] = self._counts.get(entity_type, 0) + 1
            placeholder = f"[{entity_type}_{self._counts[entity_type]}]"
            self._by_value[key] = placeholder
            self._values[placeholder] = value
        return self._by_value[key]

    @property
    def mapping(self) -> dict[str, str]:
        """placeholder -> original value (PHI: keep in memory, never log)."""
        return dict(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:  # never print values
        return f"PlaceholderMap({len(self)} placeholders)"


def resolve_overlaps(entities: Collection[DetectedEntity]) -> list[DetectedEntity]:
    """Non-overlapping spans, preferring higher score then the longer span; sorted by start."""
    kept: list[DetectedEntity] = []
    for entity in sorted(entities, key=lambda e: (-e.score, -(e.end - e.start), e.start)):
        if all(entity.end <= other.start or entity.start >= other.end for other in kept):
            kept.append(entity)
    return sorted(kept, key=lambda e: e.start)


def substitute(text: str, entities: Sequence[DetectedEntity], placeholders: PlaceholderMap) -> str:
    """text with each (non-overlapping, sorted) span replaced by its placeholder."""
    parts: list[str] = []
    cursor = 0
    for entity in entities:
        parts.append(text[cursor:entity.start])
        parts.append(placeholders.placeholder_for(entity.entity_type, text[entity.start:entity.end]))
        cursor = entity.end
    parts.append(text[cursor:])
    return "".join(parts)


class Redactor:
    """Async de-identification: owns the Deidentifier (built once, off the loop) and its thread pool."""

    def __init__(self, executor: Executor, policy: RedactionPolicy) -> None:
        self._executor = executor
        self._policy = policy
        self._deidentifier: Deidentifier | None = None

    @property
    def ready(self) -> bool:
        return self._deidentifier is not None

    def ensure_ready(self) -> None:
        """Raise NotReady until the deidentifier is built and warm."""
        self._loaded()

    def _loaded(self) -> Deidentifier:
        if self._deidentifier is None:
            raise NotReady("de-identification is not ready")
        return self._deidentifier

    async def load(self, build: Callable[[], Deidentifier]) -> None:
        """Build the deidentifier in the pool and run one analysis, so the first request is not slow."""
        loop = asyncio.get_running_loop()
        deidentifier = await loop.run_in_executor(self._executor, build)
        await loop.run_in_executor(self._executor, deidentifier.analyze, [WARMUP_TEXT])
        self._deidentifier = deidentifier

    async def redact(self, texts: Sequence[str], placeholders: PlaceholderMap) -> list[Redaction]:
        """Each text with its PHI replaced; placeholders are shared by all texts of the request."""
        deidentifier = self._loaded()
        if not texts:
            return []
        started = time.perf_counter()
        found = await asyncio.get_running_loop().run_in_executor(
            self._executor, deidentifier.analyze, list(texts)
        )
        DEIDENTIFY_SECONDS.observe(time.perf_counter() - started)
        redactions = []
        for text, entities in zip(texts, found, strict=True):
            kept = resolve_overlaps([entity for entity in entities if self._policy.applies_to(entity)])
            for entity in kept:
                PHI_ENTITIES_DETECTED.labels(entity.entity_type).inc()
            redactions.append(Redaction(substitute(text, kept, placeholders), tuple(kept)))
        return redactions
