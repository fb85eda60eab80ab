"""The engine on its own: decode correctness, finish reasons, failures, shutdown, metrics."""
from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import torch
from prometheus_client import REGISTRY
from transformers import AutoModelForCausalLM, AutoTokenizer

from libs.config import ModelSettings, ServingSettings
from libs.errors import NotReady
from libs.llm.batch import KVBatch
from libs.llm.chat import ChatTemplate
from libs.llm.engine import EngineConfig, LLMEngine
from libs.llm.types import ChatMessage
from libs.validation import GenerationParams
from tests.fixtures.llm_workers import eventually

MODEL_ID = "engine-tiny"


@contextlib.asynccontextmanager
async def started_engine(model_dir: Path, cache_dir: Path, *, model: ModelSettings | None = None,
                         **serving) -> AsyncIterator[LLMEngine]:
    model = model or ModelSettings(device="cpu", cache_dir=cache_dir)
    config = EngineConfig(MODEL_ID, str(model_dir), "main", model,
                          ServingSettings(**{"max_new_tokens_limit": 4000, **serving}))
    engine = LLMEngine(config)
    await engine.start()
    try:
        yield engine
    finally:
        await engine.close()


@pytest.fixture
async def engine(tiny_lm_dir, tmp_path) -> AsyncIterator[LLMEngine]:
    async with started_engine(tiny_lm_dir, tmp_path) as started:
        yield started


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name, {"model_id": MODEL_ID}) or 0.0


async def test_greedy_output_matches_transformers_generate(engine, tiny_lm_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_dir)
    for prompt in ("The patient reports", "Follow up in two weeks"):
        ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
        expected = model.generate(ids, max_new_tokens=30, do_sample=False, min_new_tokens=30,
                                  pad_token_id=tokenizer.eos_token_id)[0, ids.shape[1]:]
        completion = await engine.complete(prompt, GenerationParams(max_new_tokens=30))
        assert completion.text == tokenizer.decode(expected, skip_special_tokens=True)


async def test_seeded_streams_do_not_depend_on_each_other(engine):
    params = [GenerationParams(max_new_tokens=25, temperature=1.0, seed=seed) for seed in (1, 2)]
    alone = [await engine.complete("hello", p) for p in params]
    together = await asyncio.gather(*(engine.complete("hello", p) for p in params))
    assert list(together) == alone


async def test_repetition_penalty_changes_greedy_output(engine):
    plain = await engine.complete("Blood pressure", GenerationParams(max_new_tokens=30))
    penalized = await engine.complete("Blood pressure", GenerationParams(max_new_tokens=30, repetition_penalty=5.0))
    assert plain.text != penalized.text


async def test_default_max_new_tokens_comes_from_the_settings(tiny_lm_dir, tmp_path):
    async with started_engine(tiny_lm_dir, tmp_path, default_max_new_tokens=7) as engine:
        completion = await engine.complete("hello", GenerationParams())
    assert (completion.finish_reason, completion.usage.generated_tokens) == ("length", 7)


@pytest.fixture(scope="module")
def eos_lm_dir(tiny_lm_dir, tmp_path_factory) -> Path:
    """The tiny model edited so that its next token is always end-of-sequence."""
    folder = tmp_path_factory.mktemp("eos-lm")
    shutil.copytree(tiny_lm_dir, folder, dirs_exist_ok=True)
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir)
    eos = model.config.eos_token_id
    with torch.no_grad():
        model.transformer.wte.weight[eos] *= 50
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.copy_(model.transformer.wte.weight[eos])
    model.save_pretrained(folder)
    return folder


async def test_end_of_sequence_finishes_with_eos(eos_lm_dir, tmp_path):
    async with started_engine(eos_lm_dir, tmp_path) as engine:
        completion = await engine.complete("hello", GenerationParams(max_new_tokens=50))
    assert (completion.text, completion.finish_reason, completion.usage.generated_tokens) == ("", "stop", 1)


async def test_a_failing_step_fails_that_request_only_and_frees_its_slot(engine):
    with pytest.raises(IndexError):
        await engine.complete([10**7], GenerationParams(max_new_tokens=3))  # no such token in the vocabulary

    async def slot_free() -> bool:
        return engine.admission.running == 0

    await eventually(slot_free, timeout=2.0)
    assert (await engine.complete("hello", GenerationParams(max_new_tokens=2))).usage.generated_tokens == 2


async def test_closing_the_engine_ends_running_streams_as_cancelled(engine):
    deltas = engine.stream("hello", GenerationParams(max_new_tokens=4000))
    await anext(deltas)
    closing = asyncio.create_task(engine.close())
    last = [delta async for delta in deltas][-1]
    await closing
    assert last.finish_reason == "cancelled" and 0 < last.usage.generated_tokens < 4000
    with pytest.raises(NotReady):
        await engine.complete("hello", GenerationParams(max_new_tokens=2))


async def test_requests_before_loading_are_not_ready(tiny_lm_dir, tmp_path):
    engine = LLMEngine(EngineConfig(MODEL_ID, str(tiny_lm_dir), "main", ModelSettings(cache_dir=tmp_path),
                                    ServingSettings()))
    with pytest.raises(NotReady, match="loading"):
        await engine.complete("hello", GenerationParams())
    assert not engine.warm and engine.description is None


async def test_metrics_count_tokens_and_requests(engine):
    before = {name: sample(name) for name in ("medai_prompt_tokens_total", "medai_generation_tokens_total",
                                              "medai_time_to_first_token_seconds_count",
                                              "medai_inter_token_latency_seconds_count")}
    deltas = engine.stream("hello world", GenerationParams(max_new_tokens=10))
    await anext(deltas)
    assert sample("medai_num_requests_running") == 1
    last = [delta async for delta in deltas][-1]
    assert sample("medai_num_requests_running") == 0
    assert sample("medai_prompt_tokens_total") - before["medai_prompt_tokens_total"] == last.usage.prompt_tokens
    assert sample("medai_generation_tokens_total") - before["medai_generation_tokens_total"] == 10
    assert sample("medai_time_to_first_token_seconds_count") - before["medai_time_to_first_token_seconds_count"] == 1
    assert sample("medai_inter_token_latency_seconds_count") - before["medai_inter_token_latency_seconds_count"] == 9
    assert sample("medai_request_queue_time_seconds_count") >= 1


def test_chat_template_renders_and_encodes(tiny_lm_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_dir)
    chat = ChatTemplate.of(tokenizer)
    assert chat is not None
    messages = [ChatMessage("system", "Be brief."), ChatMessage("user", "hello")]
    text = chat.render(messages)
    assert text == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"
    assert tokenizer.decode(chat.encode(messages)) == text
    tokenizer.chat_template = None
    assert ChatTemplate.of(tokenizer) is None


PROMPTS = ["The patient reports mild chest pain", "hello", "Follow up in two weeks. Order a complete blood count",
           "Blood pressure is normal"]


def batch_counts() -> tuple[float, float]:
    """(decode forward passes, sequence-rows decoded) so far, from medai_batch_size."""
    return sample("medai_batch_size_count"), sample("medai_batch_size_sum")


async def test_concurrent_requests_are_decoded_together_with_the_output_of_each_alone(engine):
    params = GenerationParams(max_new_tokens=30)
    alone = [await engine.complete(prompt, params) for prompt in PROMPTS]
    passes_before, rows_before = batch_counts()
    together = await asyncio.gather(*(engine.complete(prompt, params) for prompt in PROMPTS))
    passes, rows = batch_counts()
    assert list(together) == alone
    decoded = sum(completion.usage.generated_tokens - 1 for completion in together)  # the first comes from prefill
    assert rows - rows_before == decoded
    assert passes - passes_before <= max(c.usage.generated_tokens for c in together) + len(PROMPTS) < decoded


async def test_a_request_joins_and_leaves_a_running_batch(engine):
    long_params, short_params = GenerationParams(max_new_tokens=300), GenerationParams(max_new_tokens=10)
    long_alone = await engine.complete(PROMPTS[0], long_params)
    short_alone = await engine.complete(PROMPTS[1], short_params)
    passes_before, rows_before = batch_counts()
    async with contextlib.aclosing(engine.stream(PROMPTS[0], long_params)) as long_stream:
        first = await anext(long_stream)
        short = await engine.complete(PROMPTS[1], short_params)  # joins, decodes beside the long one, leaves
        rest = [delta async for delta in long_stream]
    assert short == short_alone
    assert first.text + "".join(delta.text for delta in rest) == long_alone.text
    assert rest[-1].usage == long_alone.usage and rest[-1].finish_reason == "length"
    passes, rows = batch_counts()
    assert rows - rows_before == 299 + 9 and passes - passes_before < 299 + 9  # some passes held both


async def test_a_cancelled_sequence_leaves_the_batch_and_the_others_go_on(engine):
    params = GenerationParams(max_new_tokens=200)
    alone = await engine.complete(PROMPTS[2], params)
    cancelled = engine.stream(PROMPTS[0], GenerationParams(max_new_tokens=4000))
    await anext(cancelled)
    kept = engine.stream(PROMPTS[2], params)
    first = await anext(kept)
    await cancelled.aclose()

    async def one_running() -> bool:
        return engine.admission.running == 1

    await eventually(one_running, timeout=2.0)
    rest = [delta async for delta in kept]
    assert first.text + "".join(delta.text for delta in rest) == alone.text and rest[-1].usage == alone.usage
    assert engine.admission.running == 0


async def test_a_model_whose_caches_cannot_be_stacked_decodes_sequences_in_turns(tiny_sliding_lm_dir, tmp_path):
    async with started_engine(tiny_sliding_lm_dir, tmp_path) as engine:
        assert engine.max_batch_size == 1
        params = GenerationParams(max_new_tokens=20)
        alone = [await engine.complete(prompt, params) for prompt in PROMPTS[:3]]
        passes_before, rows_before = batch_counts()
        together = await asyncio.gather(*(engine.complete(prompt, params) for prompt in PROMPTS[:3]))
        passes, rows = batch_counts()
    assert list(together) == alone
    assert passes - passes_before == rows - rows_before == sum(c.usage.generated_tokens - 1 for c in together)


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="the quantization extra is not installed")
async def test_an_8bit_model_is_served_in_batches(wide_lm_dir, tmp_path):
    model = ModelSettings(device="cpu", cache_dir=tmp_path, use_quantization=True, quantization_type="8bit")
    async with started_engine(wide_lm_dir, tmp_path, model=model) as engine:
        assert engine.description.quantization == "8bit" and engine.max_batch_size == 16
        passes_before, rows_before = batch_counts()
        completions = await asyncio.gather(*(engine.complete(prompt, GenerationParams(max_new_tokens=12))
                                             for prompt in PROMPTS))
        passes, rows = batch_counts()
    assert [completion.usage.generated_tokens for completion in completions] == [12] * len(PROMPTS)
    assert passes - passes_before < rows - rows_before == 11 * len(PROMPTS)


async def test_a_bad_prompt_prefilled_with_others_fails_alone(engine):
    params = GenerationParams(max_new_tokens=10)
    alone = [await engine.complete(prompt, params) for prompt in PROMPTS[:2]]
    results = await asyncio.gather(engine.complete(PROMPTS[0], params), engine.complete([10**7], params),
                                   engine.complete(PROMPTS[1], params), return_exceptions=True)
    assert isinstance(results[1], IndexError)  # no such token in the vocabulary
    assert [results[0], results[2]] == alone

    async def slots_free() -> bool:
        return engine.admission.running == 0

    await eventually(slots_free, timeout=2.0)


async def test_a_failure_outside_any_one_sequence_fails_the_running_ones_and_the_engine_goes_on(engine, monkeypatch):
    params = GenerationParams(max_new_tokens=400)
    running = engine.stream(PROMPTS[0], params)
    await anext(running)
    extend = KVBatch.extend

    def out_of_memory(self, other):  # what joining the batch meets when memory runs out (a GPU's case)
        raise MemoryError("simulated")

    monkeypatch.setattr(KVBatch, "extend", out_of_memory)
    with pytest.raises(MemoryError):
        await engine.complete(PROMPTS[1], GenerationParams(max_new_tokens=5))
    with pytest.raises(MemoryError):
        async for _ in running:
            pass
    monkeypatch.setattr(KVBatch, "extend", extend)
    assert engine.admission.running == 0
    assert (await engine.complete(PROMPTS[1], GenerationParams(max_new_tokens=5))).usage.generated_tokens == 5
