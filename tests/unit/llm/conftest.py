"""Tiny models for the engine's unit tests."""
from __future__ import annotations

import pytest

from tests.fixtures.tiny_lm import build_tiny_gguf, build_tiny_lm, build_tiny_sliding_lm


@pytest.fixture(scope="session")
def tiny_gguf(tiny_lm_dir, tmp_path_factory):
    """A tiny random Llama as one .gguf file (float32), sharing the tiny model's tokenizer."""
    return build_tiny_gguf(tmp_path_factory.mktemp("tiny-gguf") / "tiny-llama.gguf", tiny_lm_dir)


@pytest.fixture(scope="session")
def tiny_sliding_lm_dir(tiny_lm_dir, tmp_path_factory):
    """A tiny random Mistral whose layers use sliding-window attention (caches that cannot be stacked)."""
    return build_tiny_sliding_lm(tmp_path_factory.mktemp("tiny-sliding"), tiny_lm_dir)


@pytest.fixture(scope="session")
def wide_lm_dir(tmp_path_factory):
    """The tiny GPT-2, 64 wide: bitsandbytes' 4-bit CPU kernels need whole blocks of 64 weights."""
    return build_tiny_lm(tmp_path_factory.mktemp("wide-lm"), width=64)
