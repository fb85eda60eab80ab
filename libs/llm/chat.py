"""The model's chat template: messages -> prompt text or token ids."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from libs.llm.types import ChatMessage


class ChatTemplate:
    """Renders conversations with the tokenizer's own template (e.g. SmolLM2's ChatML)."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer

    @classmethod
    def of(cls, tokenizer: Any) -> ChatTemplate | None:
        """The tokenizer's template, or None when it has none."""
        return cls(tokenizer) if getattr(tokenizer, "chat_template", None) else None

    def render(self, messages: Sequence[ChatMessage], *, add_generation_prompt: bool = True) -> str:
        conversation = [{"role": message.role, "content": message.content} for message in messages]
        return self._tokenizer.apply_chat_template(conversation, tokenize=False,
                                                   add_generation_prompt=add_generation_prompt)

    def encode(self, messages: Sequence[ChatMessage]) -> list[int]:
        """Token ids of the rendered conversation, ending with the assistant's turn opening."""
        # The template already writes any BOS it wants: do not add special tokens again.
        return list(self._tokenizer(self.render(messages), add_special_tokens=False)["input_ids"])
