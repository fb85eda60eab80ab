"""Fit a conversation into the context window: the system prompt stays, the oldest turns go first."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from libs.errors import InvalidInput
from libs.llm.chat import ChatTemplate
from libs.llm.types import ChatMessage
from libs.stores.sessions import Turn


@dataclass(frozen=True)
class FittedPrompt:
    token_ids: list[int]
    turns_used: int  # history turns that fit (the newest ones)


def conversation(system_prompt: str | None, turns: Sequence[Turn], message: str) -> list[ChatMessage]:
    """Messages in order: system prompt (when set), each turn's user and assistant message, the new message."""
    messages = [ChatMessage("system", system_prompt)] if system_prompt else []
    for turn in turns:
        messages += [ChatMessage("user", turn.user), ChatMessage("assistant", turn.assistant)]
    return [*messages, ChatMessage("user", message)]


def fit_prompt(chat: ChatTemplate, system_prompt: str | None, turns: Sequence[Turn], message: str,
               budget: int) -> FittedPrompt:
    """The longest suffix of the history that fits `budget` tokens with the system prompt and the new message."""
    for dropped in range(len(turns) + 1):
        kept = turns[dropped:]
        token_ids = chat.encode(conversation(system_prompt, kept, message))
        if len(token_ids) <= budget:
            return FittedPrompt(token_ids, len(kept))
    raise InvalidInput(
        f"message and system prompt take {len(token_ids)} tokens; at most {budget} fit with the reply",
        field="inputs",
    )
