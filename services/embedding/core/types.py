"""Domain values of the embedding worker (what the mapper converts to and from protobuf)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
