"""Forward passes of one causal LM with a KV cache, across transformers versions."""
from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
from transformers import DynamicCache


class ModelRunner:
    """Runs the model one step at a time for a sequence whose keys and values live in a cache."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.device = next(model.parameters()).device
        parameters = inspect.signature(model.forward).parameters
        # transformers 5 names it `cache`; 4.x (and 5.x until 5.40, deprecated) `past_key_values`.
        self._cache_argument = "cache" if "cache" in parameters else "past_key_values"
        self._keeps_last_logits = "logits_to_keep" in parameters

    def new_cache(self) -> Any:
        try:
            return DynamicCache(config=self.model.config)
        except TypeError:  # older transformers: no config argument
            return DynamicCache()

    def next_token_logits(self, token_ids: Sequence[int], cache: Any) -> torch.Tensor:
        """Logits (vocab,) after feeding token_ids, which continue what the cache already holds."""
        input_ids = torch.tensor([list(token_ids)], dtype=torch.long, device=self.device)
        kwargs: dict[str, Any] = {self._cache_argument: cache, "use_cache": True}
        if self._keeps_last_logits:
            kwargs["logits_to_keep"] = 1
        return self.model(input_ids=input_ids, **kwargs).logits[0, -1]
