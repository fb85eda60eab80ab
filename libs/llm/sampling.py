"""Next-token choice: logits processors from transformers, greedy or sampled with a per-request generator."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import (
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from libs.validation import GenerationParams


class TokenSampler:
    """Chooses each next token for one sequence; seeded sampling is reproducible."""

    def __init__(self, params: GenerationParams, device: torch.device) -> None:
        self.greedy = params.greedy
        self._device = device
        self._penalty = RepetitionPenaltyLogitsProcessor(params.repetition_penalty) if _penalizes(params) else None
        self._warpers = LogitsProcessorList() if self.greedy else _warpers(params)
        self._needs_history = self._penalty is not None or bool(self._warpers)
        self._generator: torch.Generator | None = None
        if not self.greedy:
            self._generator = torch.Generator(device=device)
            if params.seed is not None:
                self._generator.manual_seed(params.seed)
            else:
                self._generator.seed()

    def __call__(self, token_ids: Sequence[int], logits: torch.Tensor) -> int:
        """The next token, given every token so far (prompt and generated) and the last logits (vocab,)."""
        scores = logits.float().unsqueeze(0)
        history = torch.tensor([token_ids], dtype=torch.long, device=self._device) if self._needs_history else None
        if self._penalty is not None:
            scores = self._penalty(history, scores)
        if self.greedy:
            return _argmax(scores, logits)
        probabilities = torch.softmax(self._warpers(history, scores), dim=-1)
        if not bool(torch.isfinite(probabilities).all()):
            # Scores overflowed (a temperature or penalty near 0, both valid): the distribution's limit is greedy.
            return _argmax(scores, logits)
        return int(torch.multinomial(probabilities, 1, generator=self._generator))


def _argmax(scores: torch.Tensor, logits: torch.Tensor) -> int:
    """The best token by scores, or by the raw logits where the scores overflowed (ties of infinities)."""
    return int(scores.argmax()) if bool(torch.isfinite(scores).all()) else int(logits.argmax())


def _penalizes(params: GenerationParams) -> bool:
    return params.repetition_penalty is not None and params.repetition_penalty != 1.0


def _warpers(params: GenerationParams) -> LogitsProcessorList:
    warpers = LogitsProcessorList()
    if params.temperature is not None and params.temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(params.temperature))
    if params.top_k:
        warpers.append(TopKLogitsWarper(top_k=params.top_k))
    if params.top_p is not None and params.top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p=params.top_p))
    return warpers
