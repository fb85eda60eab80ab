"""One sequence being decoded: its sampler, detokenizer and stop strings (decode-thread side).

Its KV cache is a row of the decode batch it joined after its prefill."""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from libs.llm import metrics
from libs.llm.detokenize import IncrementalDetokenizer
from libs.llm.runner import ModelRunner
from libs.llm.sampling import TokenSampler
from libs.llm.stops import StopMatcher
from libs.llm.types import FinishReason, TextDelta, Usage
from libs.validation import GenerationParams

# Where a sequence delivers its events (text deltas, or the error that ended it); must be thread-safe.
EventSink = Callable[[TextDelta | BaseException], None]


@dataclass(frozen=True)
class SequenceSpec:
    model_id: str
    prompt_ids: Sequence[int]
    params: GenerationParams
    max_new_tokens: int
    eos_ids: frozenset[int]
    arrived_at: float  # time.perf_counter() when the request arrived


class DecodeSequence:
    """Takes one token per `accept`; the decode loop owns it while it runs."""

    def __init__(self, spec: SequenceSpec, tokenizer: Any, runner: ModelRunner, sink: EventSink,
                 on_finish: Callable[[], None]) -> None:
        self.spec = spec
        self._sink = sink
        self._on_finish = on_finish
        self._sampler = TokenSampler(spec.params, runner.device)
        self._detokenizer = IncrementalDetokenizer(tokenizer, spec.prompt_ids)
        self._stops = StopMatcher(spec.params.stop)
        self._token_ids = list(spec.prompt_ids)
        self._generated = 0
        self._index = 0
        self._last_token_at = 0.0
        self._cancelled = False
        self.finished = False

    def cancel(self) -> None:
        """Ask the decode loop to drop this sequence before its next step (any thread)."""
        self._cancelled = True

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    @property
    def last_token(self) -> int:
        return self._token_ids[-1]

    @property
    def prompt_length(self) -> int:
        return len(self.spec.prompt_ids)

    @property
    def prompt_ids(self) -> list[int]:
        return self._token_ids[:self.prompt_length]

    def prefill_started(self) -> None:
        """Record how long the request waited and its prompt tokens: its prefill runs now."""
        metrics.REQUEST_QUEUE_TIME.labels(self.spec.model_id).observe(time.perf_counter() - self.spec.arrived_at)
        metrics.PROMPT_TOKENS.labels(self.spec.model_id).inc(self.prompt_length)

    def accept(self, logits: Any) -> bool:
        """Choose the next token from its logits (vocab,) and deliver its text; True once the sequence finished."""
        token = self._sampler(self._token_ids, logits)
        self._token_ids.append(token)
        self._generated += 1
        self._observe_token()
        if token in self.spec.eos_ids:
            return self.finish("stop", self._stops.flush())
        text, stopped = self._stops.feed(self._detokenizer.push(token))
        if stopped:
            return self.finish("stop_sequence", text)
        if self._generated >= self.spec.max_new_tokens:
            return self.finish("length", text + self._stops.flush())
        if text:
            self._emit(TextDelta(self._index, text))
        return False

    def finish(self, reason: FinishReason, text: str = "") -> bool:
        """Deliver the last event and free the slot (idempotent)."""
        if not self.finished:
            self.finished = True
            metrics.SEQUENCES_FINISHED.labels(self.spec.model_id, reason).inc()
            # Slot first: by the time the caller sees the end, its slot is free for its next request.
            self._release()
            self._emit(TextDelta(self._index, text, reason, Usage(len(self.spec.prompt_ids), self._generated)))
        return True

    def fail(self, error: BaseException) -> None:
        if not self.finished:
            self.finished = True
            self._release()
            self._sink(error)

    def _emit(self, delta: TextDelta) -> None:
        self._index += 1
        self._sink(delta)

    def _release(self) -> None:
        self._on_finish()

    def _observe_token(self) -> None:
        now = time.perf_counter()
        labels = (self.spec.model_id,)
        if self._generated == 1:
            metrics.TIME_TO_FIRST_TOKEN.labels(*labels).observe(now - self.spec.arrived_at)
        else:
            metrics.INTER_TOKEN_LATENCY.labels(*labels).observe(now - self._last_token_at)
        metrics.GENERATION_TOKENS.labels(*labels).inc()
        self._last_token_at = now
