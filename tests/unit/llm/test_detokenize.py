"""Incremental detokenization: whole characters only, spaces kept, equal to a full decode."""
from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from libs.llm.detokenize import REPLACEMENT_CHAR, IncrementalDetokenizer

TEXTS = [
    " The patient reports mild chest pain.",
    " café résumé ünïcödé 🩺💊 病院 — done",
    "\nline one\n  indented line two",
]


@pytest.fixture(scope="module")
def tokenizer(tiny_lm_dir):
    return AutoTokenizer.from_pretrained(tiny_lm_dir)


@pytest.mark.parametrize("text", TEXTS)
def test_deltas_add_up_to_the_full_decode_without_broken_characters(tokenizer, text):
    prompt = tokenizer("Note:")["input_ids"]
    generated = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(generated) > len(text) / 4  # several tokens, some of them parts of one character
    detokenizer = IncrementalDetokenizer(tokenizer, prompt)
    deltas = [detokenizer.push(token) for token in generated]
    assert "".join(deltas) == text
    assert not any(REPLACEMENT_CHAR in delta for delta in deltas)
    if not text.isascii():
        assert "" in deltas  # multi-byte characters spanned tokens and were held back


def test_special_tokens_are_not_emitted(tokenizer):
    detokenizer = IncrementalDetokenizer(tokenizer, tokenizer("hi")["input_ids"])
    marker = tokenizer.convert_tokens_to_ids("<|im_end|>")
    pieces = [detokenizer.push(token) for token in [*tokenizer(" ok", add_special_tokens=False)["input_ids"], marker]]
    assert "".join(pieces) == " ok"
