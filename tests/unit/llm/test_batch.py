"""Continuous batching at the forward-pass level: batched greedy decoding equals decoding each sequence alone."""
from __future__ import annotations

import pytest
import torch

from libs.config import ModelSettings
from libs.llm.batch import KVBatch, can_merge
from libs.llm.loader import load_model
from libs.llm.runner import ModelRunner

PROMPTS = ["The patient reports mild chest pain", "hello", "Follow up in two weeks. Order a complete blood count",
           "Blood pressure is normal"]


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def runner_and_tokenizer(request, tiny_lm_dir, tiny_gguf, tmp_path_factory):
    """GPT-2 (absolute position embeddings) and Llama (rotary positions, from a GGUF) runners."""
    source = tiny_lm_dir if request.param == "gpt2" else tiny_gguf
    loaded = load_model(str(source), "main", ModelSettings(device="cpu", cache_dir=tmp_path_factory.mktemp("cache")))
    return ModelRunner(loaded.model), loaded.tokenizer


def alone(runner: ModelRunner, prompt_ids: list[int], count: int) -> tuple[list[int], list[torch.Tensor]]:
    """Greedy tokens and their logits, one sequence without any padding."""
    with torch.inference_mode():
        cache = runner.new_cache()
        logits = runner.next_token_logits(prompt_ids, cache)
        tokens, seen = [int(logits.argmax())], [logits]
        for _ in range(count - 1):
            logits = runner.next_token_logits(tokens[-1:], cache)
            tokens.append(int(logits.argmax()))
            seen.append(logits)
    return tokens, seen


def test_batched_greedy_equals_unbatched_token_for_token_with_joins_and_leaves(runner_and_tokenizer):
    runner, tokenizer = runner_and_tokenizer
    assert runner.batchable
    prompts = [tokenizer(prompt)["input_ids"] for prompt in PROMPTS]
    lengths = [40, 12, 30, 25]  # tokens each sequence generates: rows leave at different steps
    joins = [0, 0, 5, 9]  # decode step at which each sequence is prefilled and joins (0: the first two together)
    expected = [alone(runner, ids, count) for ids, count in zip(prompts, lengths, strict=True)]

    batch, rows, got, logits_seen = KVBatch(), [], {i: [] for i in range(4)}, {i: [] for i in range(4)}
    with torch.inference_mode():
        for step in range(max(lengths) + max(joins)):
            arriving = [index for index, join in enumerate(joins) if join == step]
            if arriving:
                arrivals, logits = runner.prefill([prompts[index] for index in arriving])
                for row, index in enumerate(arriving):
                    got[index].append(int(logits[row].argmax()))
                    logits_seen[index].append(logits[row])
                batch.extend(arrivals)
                rows += arriving
            if not rows:
                break
            logits = runner.decode(batch, [got[index][-1] for index in rows])
            for row, index in enumerate(rows):
                got[index].append(int(logits[row].argmax()))
                logits_seen[index].append(logits[row])
            kept = [row for row, index in enumerate(rows) if len(got[index]) < lengths[index]]
            batch.keep(kept)
            rows = [rows[row] for row in kept]
    for index, (tokens, logits) in enumerate(expected):
        assert got[index] == tokens, f"sequence {index}"
        assert torch.allclose(torch.stack(logits_seen[index]), torch.stack(logits), atol=1e-4)


def test_padding_is_trimmed_once_the_longest_sequence_leaves(runner_and_tokenizer):
    runner, tokenizer = runner_and_tokenizer
    short, long = tokenizer("hello")["input_ids"], tokenizer(PROMPTS[2])["input_ids"]
    batch = KVBatch()
    with torch.inference_mode():
        for ids in (short, long):
            batch.extend(runner.prefill([ids])[0])
        assert (len(batch), batch.width) == (2, len(long))
        assert batch.mask.sum(dim=1).tolist() == [len(short), len(long)]
        assert batch.positions.tolist() == [len(short), len(long)]
        runner.decode(batch, [1, 1])
        assert batch.width == len(long) + 1 and batch.positions.tolist() == [len(short) + 1, len(long) + 1]
        batch.keep([0])
        assert (len(batch), batch.width) == (1, len(short) + 1)  # the long row's columns are gone
        assert batch.cache.get_seq_length() == len(short) + 1 and bool(batch.mask.all())
        batch.keep([])
        assert len(batch) == 0 and batch.cache is None


def test_sliding_window_caches_are_not_merged(tiny_sliding_lm_dir, tmp_path):
    loaded = load_model(str(tiny_sliding_lm_dir), "main", ModelSettings(device="cpu", cache_dir=tmp_path))
    runner = ModelRunner(loaded.model)
    assert not runner.batchable and not can_merge(runner.new_cache())
    assert not can_merge(object())  # not a transformers 5 cache


def test_prompts_prefilled_together_equal_each_alone(runner_and_tokenizer):
    runner, tokenizer = runner_and_tokenizer
    prompts = [tokenizer(prompt)["input_ids"] for prompt in PROMPTS]
    with torch.inference_mode():
        together, logits = runner.prefill(prompts)
        assert together.positions.tolist() == [len(ids) for ids in prompts]
        assert together.width == max(len(ids) for ids in prompts)
        for row, ids in enumerate(prompts):
            alone_logits = runner.next_token_logits(ids, runner.new_cache())
            assert torch.allclose(logits[row], alone_logits, atol=1e-4)
            assert int(logits[row].argmax()) == int(alone_logits.argmax())
        together.keep([1, 3])  # finished at once: the others leave before joining, padding trimmed
        assert together.width == max(len(prompts[1]), len(prompts[3]))
