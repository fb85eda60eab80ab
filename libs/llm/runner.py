"""Forward passes of one causal LM with KV caches: a prompt alone (prefill), a batch of sequences (decode)."""
from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
from transformers import DynamicCache

from libs.llm.batch import KVBatch, can_merge, left_padded


class ModelRunner:
    """Runs the model for the decode loop; `batchable` tells whether sequences can share one forward pass."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.device = next(model.parameters()).device
        parameters = inspect.signature(model.forward).parameters
        # transformers 5 names it `cache`; 4.x (and 5.x until 5.40, deprecated) `past_key_values`.
        self._cache_argument = "cache" if "cache" in parameters else "past_key_values"
        self._keeps_last_logits = "logits_to_keep" in parameters
        self.batchable = can_merge(self.new_cache())

    def new_cache(self) -> Any:
        try:
            return DynamicCache(config=self.model.config)
        except TypeError:  # older transformers: no config argument
            return DynamicCache()

    def prefill(self, prompts: Sequence[Sequence[int]]) -> tuple[KVBatch, torch.Tensor]:
        """Run prompts together (left-padded): their rows of KV cache, and the logits (rows, vocab) that follow."""
        inputs = left_padded(prompts, self.device)
        cache = self.new_cache()
        logits = self._forward(cache=cache, **inputs)[:, -1]
        return KVBatch(cache, inputs["attention_mask"]), logits

    def next_token_logits(self, token_ids: Sequence[int], cache: Any) -> torch.Tensor:
        """Logits (vocab,) after feeding token_ids, which continue what the cache already holds (one sequence)."""
        input_ids = torch.tensor([list(token_ids)], dtype=torch.long, device=self.device)
        return self._forward(input_ids=input_ids, cache=cache)[0, -1]

    def decode(self, batch: KVBatch, tokens: Sequence[int]) -> torch.Tensor:
        """Logits (rows, vocab) after feeding each row of the batch its next token; the batch advances."""
        inputs = batch.inputs(tokens)
        logits = self._forward(cache=batch.cache, **inputs)[:, -1]
        batch.advance(inputs)
        return logits

    def _forward(self, *, cache: Any, **inputs: torch.Tensor) -> torch.Tensor:
        kwargs: dict[str, Any] = {self._cache_argument: cache, "use_cache": True, **inputs}
        if self._keeps_last_logits:
            kwargs["logits_to_keep"] = 1
        return self.model(**kwargs).logits
