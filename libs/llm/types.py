"""Domain values the engine exchanges with its callers."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

FinishReason = Literal["stop", "stop_sequence", "length", "cancelled"]
# A prompt as text (tokenized with the tokenizer's special tokens) or as token ids (e.g. a rendered chat).
Prompt = str | Sequence[int]


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    generated_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.generated_tokens


@dataclass(frozen=True)
class TextDelta:
    """One streamed event: new text (whole characters); the last one carries finish_reason and usage."""

    index: int
    text: str
    finish_reason: FinishReason | None = None
    usage: Usage | None = None

    @property
    def final(self) -> bool:
        return self.finish_reason is not None


@dataclass(frozen=True)
class Completion:
    """A whole generation, as the unary API answers it."""

    text: str
    finish_reason: FinishReason
    usage: Usage


@dataclass(frozen=True)
class ChatMessage:
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class ModelDescription:
    """What loading found out about the model (served in the model catalogue)."""

    device: str
    dtype: str
    quantization: str
    parameter_count: int
    memory_bytes: int
    context_length: int
    revision: str
    loaded_at: datetime
