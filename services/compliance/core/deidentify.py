"""PHI de-identification: find PHI spans and replace them with typed numbered placeholders.

A `Deidentifier` finds spans (CPU-bound, synchronous; Presidio's is in `presidio.py`); the
`Redactor` runs it in a thread pool, applies the policy (score threshold, PHI types kept),
resolves overlapping spans and substitutes `[PERSON_1]`-
style placeholders that are stable within one request (`PlaceholderMap`). The placeholder -> value mapping stays in
memory for the request only (re-identification, `reidentification.py`, reads it); it is never logged.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Protocol

from libs.errors import NotReady
from services.compliance.core.phi.vocabulary import ordinary_word
from services.compliance.core.types import DetectedEntity, Redaction
from services.compliance.metrics import (
    DEIDENTIFY_BATCH_TEXTS,
    DEIDENTIFY_FAILURES,
    DEIDENTIFY_SECONDS,
    PHI_ENTITIES_DETECTED,
)

log = logging.getLogger(__name__)

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
    """Which spans are replaced (scored at least `score_threshold`, of a type not in `allowed_types`)
    and with what (`operator`, one of OPERATORS; `hash_key` keys the `hash` operator)."""

    score_threshold: float = 0.35
    allowed_types: frozenset[str] = frozenset()
    operator: str = "placeholder"
    hash_key: bytes = field(default=b"", repr=False)

    def applies_to(self, entity: DetectedEntity) -> bool:
        return entity.score >= self.score_threshold and entity.entity_type not in self.allowed_types

    def replacement(self, entity_type: str, value: str, placeholders: PlaceholderMap) -> str:
        return OPERATORS[self.operator](self, entity_type, value, placeholders)


class PlaceholderMap:
    """Placeholders of one request (or conversation session): the same (type, value) always gets the
    same `[TYPE_n]`. Placeholders of values the caller sent are marked `supplied`: only those are
    restored by re-identification (PHI-like values a model made up stay redacted)."""

    def __init__(self) -> None:
        self._by_value: dict[tuple[str, str], str] = {}
        self._counts: dict[str, int] = {}
        self._values: dict[str, str] = {}
        self._supplied: set[str] = set()

    def placeholder_for(self, entity_type: str, value: str) -> str:
        key = (entity_type, value)
        if key not in self._by_value:
            self._counts[entity_type] = self._counts.get(entity_type, 0) + 1
            placeholder = f"[{entity_type}_{self._counts[entity_type]}]"
            self._by_value[key] = placeholder
            self._values[placeholder] = value
        return self._by_value[key]

    def known_values(self, entity_type: str) -> list[str]:
        """Values of this type that have a placeholder already, longest first (PHI: never log)."""
        return sorted((value for kind, value in self._by_value if kind == entity_type), key=len, reverse=True)

    def mark_supplied(self) -> None:
        """Every placeholder so far stands for a value the caller sent."""
        self._supplied.update(self._values)

    @property
    def mapping(self) -> dict[str, str]:
        """placeholder -> original value (PHI: keep in memory, never log)."""
        return dict(self._values)

    @property
    def supplied(self) -> dict[str, str]:
        """placeholder -> value, for values the caller sent."""
        return {p: v for p, v in self._values.items() if p in self._supplied}

    def to_json(self) -> str:
        """The map serialised (PHI: only ever stored encrypted)."""
        return json.dumps({"values": self._values, "supplied": sorted(self._supplied)})

    @classmethod
    def from_json(cls, data: str) -> PlaceholderMap:
        loaded = json.loads(data)
        placeholders = cls()
        for placeholder, value in loaded["values"].items():
            entity_type, _, number = placeholder[1:-1].rpartition("_")
            placeholders._values[placeholder] = value
            placeholders._by_value[(entity_type, value)] = placeholder
            placeholders._counts[entity_type] = max(placeholders._counts.get(entity_type, 0), int(number))
        placeholders._supplied = set(loaded["supplied"])
        return placeholders

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:  # never print values
        return f"PlaceholderMap({len(self)} placeholders)"


def _keyed_hash(policy: RedactionPolicy, entity_type: str, value: str, _: PlaceholderMap) -> str:
    digest = hmac.new(policy.hash_key, f"{entity_type}\0{value}".encode(), hashlib.sha256).hexdigest()
    return f"[{entity_type}:{digest[:HASH_CHARS]}]"


# How a found value is replaced. Only placeholders can be re-identified (their mapping is kept for the
# request or session); `hash` gives the same pseudonym for the same value everywhere (linkable, not
# reversible without the key); `mask` keeps the length; `remove` drops the value.
OPERATORS: dict[str, Callable[[RedactionPolicy, str, str, PlaceholderMap], str]] = {
    "placeholder": lambda policy, entity_type, value, placeholders: placeholders.placeholder_for(entity_type, value),
    "mask": lambda policy, entity_type, value, placeholders: MASK_CHAR * len(value),
    "remove": lambda policy, entity_type, value, placeholders: "",
    "hash": _keyed_hash,
}
MASK_CHAR = "*"
HASH_CHARS = 16

def resolve_overlaps(entities: Collection[DetectedEntity]) -> list[DetectedEntity]:
    """Non-overlapping spans sorted by start: overlapping spans merge into one covering them all (no
    character any recognizer found survives), typed as the highest-scored (then longest) of them."""
    merged: list[tuple[int, int, DetectedEntity]] = []
    for entity in sorted(entities, key=lambda e: (e.start, -e.end)):
        if merged and entity.start < merged[-1][1]:
            start, end, best = merged[-1]
            if (entity.score, entity.end - entity.start) > (best.score, best.end - best.start):
                best = entity
            merged[-1] = (start, max(end, entity.end), best)
        else:
            merged.append((entity.start, entity.end, entity))
    return [DetectedEntity(best.entity_type, start, end, best.score) for start, end, best in merged]


def prefer_known_values(text: str, entities: Sequence[DetectedEntity],
                        placeholders: PlaceholderMap) -> list[DetectedEntity]:
    """Spans that hold a value this request (or session) already has a placeholder for, with nothing but
    everyday words beside it ("Tell Quentin Zabrowski" once "Quentin Zabrowski" is known), shrink to that
    value: the same person keeps the same placeholder, and a caller allowed to gets it back. Anything
    else beside a known value (another name) keeps the whole span redacted."""
    kept = []
    for entity in entities:
        value = text[entity.start:entity.end]
        for known in placeholders.known_values(entity.entity_type):
            index = value.find(known)
            if known == value or index < 0:
                continue
            beside = f"{value[:index]} {value[index + len(known):]}".split()
            if beside and all(ordinary_word(word) for word in beside) and _whole_words(value, index, len(known)):
                entity = DetectedEntity(entity.entity_type, entity.start + index, entity.start + index + len(known),
                                        entity.score)
                break
        kept.append(entity)
    return kept


def _whole_words(value: str, index: int, length: int) -> bool:
    end = index + length
    return (index == 0 or not value[index - 1].isalnum()) and (end == len(value) or not value[end].isalnum())


def substitute(text: str, entities: Sequence[DetectedEntity], placeholders: PlaceholderMap,
               policy: RedactionPolicy = RedactionPolicy()) -> str:
    """text with each (non-overlapping, sorted) span replaced as the policy's operator says."""
    parts: list[str] = []
    cursor = 0
    for entity in entities:
        parts.append(text[cursor:entity.start])
        parts.append(policy.replacement(entity.entity_type, text[entity.start:entity.end], placeholders))
        cursor = entity.end
    parts.append(text[cursor:])
    return "".join(parts)


class AnalysisBatcher:
    """Analyses the texts of concurrent requests together: while one batch runs in the pool, new
    texts queue; the next batch takes up to `max_texts` of them (waiting up to `max_wait` seconds
    for more once one is queued) in one `analyze` call, i.e. one spaCy `nlp.pipe`."""

    def __init__(self, executor: Executor, max_texts: int = 32, max_wait: float = 0.001) -> None:
        self._executor = executor
        self._max_texts = max_texts
        self._max_wait = max_wait
        self._queue: list[tuple[list[str], asyncio.Future]] = []
        self._task: asyncio.Task | None = None

    async def analyze(self, deidentifier: Deidentifier, texts: list[str]) -> list[list[DetectedEntity]]:
        future = asyncio.get_running_loop().create_future()
        self._queue.append((texts, future))
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._drain(deidentifier))
        return await future

    async def _drain(self, deidentifier: Deidentifier) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            if self._max_wait and sum(len(t) for t, _ in self._queue) < self._max_texts:
                await asyncio.sleep(self._max_wait)
            batch, size = [], 0
            while self._queue and (not batch or size + len(self._queue[0][0]) <= self._max_texts):
                texts, future = self._queue.pop(0)
                batch.append((texts, future))
                size += len(texts)
            batch = [(texts, future) for texts, future in batch if not future.done()]
            if not batch:
                continue
            started = time.perf_counter()
            try:
                found = await loop.run_in_executor(self._executor, deidentifier.analyze,
                                                   [text for texts, _ in batch for text in texts])
            except Exception as error:
                DEIDENTIFY_FAILURES.inc(len(batch))
                log.error("PHI analysis failed", extra={"error": type(error).__name__, "requests": len(batch)})
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            DEIDENTIFY_SECONDS.observe(time.perf_counter() - started)
            DEIDENTIFY_BATCH_TEXTS.observe(size)
            offset = 0
            for texts, future in batch:
                if not future.done():
                    future.set_result(found[offset:offset + len(texts)])
                offset += len(texts)


class Redactor:
    """Async de-identification: owns the Deidentifier (built once, off the loop) and its thread pool."""

    def __init__(self, executor: Executor, policy: RedactionPolicy, *, batch_size: int = 32,
                 batch_wait_seconds: float = 0.001) -> None:
        self._executor = executor
        self._policy = policy
        self._deidentifier: Deidentifier | None = None
        self._batcher = AnalysisBatcher(executor, batch_size, batch_wait_seconds)

    @property
    def ready(self) -> bool:
        return self._deidentifier is not None

    @property
    def policy(self) -> RedactionPolicy:
        return self._policy

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

    async def find(self, texts: Sequence[str]) -> list[list[DetectedEntity]]:
        """The spans the policy replaces in each text (non-overlapping, sorted)."""
        deidentifier = self._loaded()
        if not texts:
            return []
        found = await self._batcher.analyze(deidentifier, list(texts))
        return [resolve_overlaps([e for e in entities if self._policy.applies_to(e)]) for entities in found]

    async def redact(self, texts: Sequence[str], placeholders: PlaceholderMap) -> list[Redaction]:
        """Each text with its PHI replaced; placeholders are shared by all texts of the request."""
        found = await self.find(texts)
        redactions = []
        for text, entities in zip(texts, found, strict=True):
            kept = prefer_known_values(text, entities, placeholders)
            for entity in kept:
                PHI_ENTITIES_DETECTED.labels(entity.entity_type).inc()
            redactions.append(Redaction(substitute(text, kept, placeholders, self._policy), tuple(kept)))
        return redactions
