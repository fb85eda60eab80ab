"""A conversation worker over the tiny model."""
from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from libs.config import ConversationSettings
from tests.fixtures.llm_workers import SYSTEM_PROMPT, ConversationWorker, serve_conversation, worker_fields


def tiny_worker(model_dir: Path, cache_dir: Path, *, start: bool = True, max_turns: int = 20, **serving):
    settings = ConversationSettings(**worker_fields(model_dir, cache_dir, **serving), max_turns=max_turns,
                                    system_prompt=SYSTEM_PROMPT)
    return serve_conversation(settings, start=start)


@pytest.fixture
async def worker(tiny_lm_dir, tmp_path) -> AsyncIterator[ConversationWorker]:
    async with tiny_worker(tiny_lm_dir, tmp_path) as started:
        yield started
