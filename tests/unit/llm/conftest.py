"""Tiny models for the engine's unit tests."""
from __future__ import annotations

import pytest

from tests.fixtures.tiny_lm import build_tiny_gguf


@pytest.fixture(scope="session")
def tiny_gguf(tiny_lm_dir, tmp_path_factory):
    """A tiny random Llama as one .gguf file (float32), sharing the tiny model's tokenizer."""
    return build_tiny_gguf(tmp_path_factory.mktemp("tiny-gguf") / "tiny-llama.gguf", tiny_lm_dir)
