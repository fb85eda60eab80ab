"""A generation worker over the tiny model."""
from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from libs.config import GenerationSettings
from tests.fixtures.llm_workers import GenerationWorker, serve_generation, worker_fields


def tiny_worker(model_dir: Path, cache_dir: Path, *, start: bool = True, apply_chat_template: bool = False,
                **serving):
    settings = GenerationSettings(**worker_fields(model_dir, cache_dir, **serving),
                                  apply_chat_template=apply_chat_template)
    return serve_generation(settings, start=start)


@pytest.fixture
async def worker(tiny_lm_dir, tmp_path) -> AsyncIterator[GenerationWorker]:
    async with tiny_worker(tiny_lm_dir, tmp_path) as started:
        yield started
