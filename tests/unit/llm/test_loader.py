"""Loading: folders, GGUF converted once into the disk cache, pickles only when allowed, device choice."""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest
import torch

from libs.config import ModelSettings
from libs.llm.cache import MANIFEST
from libs.llm.loader import load_model, select_device, select_dtype
from libs.llm.runner import ModelRunner
from libs.llm.sources import ModelSourceError


def settings(tmp_path: Path, **fields) -> ModelSettings:
    return ModelSettings(**{"device": "cpu", "cache_dir": tmp_path / "cache", **fields})


def greedy_tokens(loaded, prompt: str = "hello world", count: int = 8) -> list[int]:
    runner = ModelRunner(loaded.model)
    cache, ids = runner.new_cache(), loaded.tokenizer(prompt)["input_ids"]
    feed, out = ids, []
    with torch.inference_mode():
        for _ in range(count):
            token = int(runner.next_token_logits(feed, cache).argmax())
            out.append(token)
            feed = [token]
    return out


def test_folder_loads_with_its_description(tiny_lm_dir, tmp_path):
    loaded = load_model(str(tiny_lm_dir), "main", settings(tmp_path))
    description = loaded.description
    assert not loaded.converted
    assert (description.device, description.dtype, description.quantization) == ("cpu", "float32", "none")
    assert description.context_length == 4096
    assert description.parameter_count == sum(p.numel() for p in loaded.model.parameters()) > 10_000
    assert description.memory_bytes >= description.parameter_count * 4
    assert not loaded.model.training
    assert not (tmp_path / "cache").exists()  # nothing to convert, nothing cached


def test_gguf_is_converted_once_then_loaded_from_the_cache(tiny_gguf, tmp_path):
    first = load_model(str(tiny_gguf), "main", settings(tmp_path))
    entries = [path for path in (tmp_path / "cache").iterdir() if path.is_dir()]
    assert first.converted and len(entries) == 1
    assert {"model.safetensors", "tokenizer.json", "config.json", MANIFEST} <= {p.name for p in entries[0].iterdir()}
    manifest_written = (entries[0] / MANIFEST).stat().st_mtime_ns
    second = load_model(str(tiny_gguf), "main", settings(tmp_path))
    assert not second.converted
    assert (entries[0] / MANIFEST).stat().st_mtime_ns == manifest_written
    assert [path for path in (tmp_path / "cache").iterdir() if path.is_dir()] == entries
    assert greedy_tokens(second) == greedy_tokens(first)
    assert second.tokenizer.chat_template == first.tokenizer.chat_template is not None
    assert second.description.context_length == 512


def test_a_changed_gguf_is_converted_again(tiny_gguf, tmp_path):
    copy = Path(shutil.copy(tiny_gguf, tmp_path / "model.gguf"))
    assert load_model(str(copy), "main", settings(tmp_path)).converted
    copy.write_bytes(tiny_gguf.read_bytes())  # same bytes, new mtime: treated as new weights
    assert load_model(str(copy), "main", settings(tmp_path)).converted


@pytest.fixture
def pickle_folder(tiny_lm_dir, tmp_path) -> Path:
    """The tiny model with its weights as a PyTorch pickle instead of safetensors."""
    from transformers import AutoModelForCausalLM

    folder = tmp_path / "pickled"
    shutil.copytree(tiny_lm_dir, folder, ignore=shutil.ignore_patterns("*.safetensors"))
    torch.save(AutoModelForCausalLM.from_pretrained(tiny_lm_dir).state_dict(), folder / "pytorch_model.bin")
    return folder


def test_pickle_weights_are_refused_by_default(pickle_folder, tmp_path):
    with pytest.raises(ModelSourceError, match="pickle"):
        load_model(str(pickle_folder), "main", settings(tmp_path))


def test_pickle_weights_load_when_allowed(pickle_folder, tiny_lm_dir, tmp_path):
    loaded = load_model(str(pickle_folder), "main", settings(tmp_path, allow_pickle=True))
    reference = load_model(str(tiny_lm_dir), "main", settings(tmp_path))
    assert greedy_tokens(loaded) == greedy_tokens(reference)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without a GPU")
def test_cuda_without_a_gpu_is_a_clear_error():
    assert select_device("auto") == torch.device("cpu")
    with pytest.raises(ModelSourceError, match="no CUDA device"):
        select_device("cuda")


def test_dtype_choice():
    assert select_dtype("auto", torch.device("cpu")) == torch.float32
    assert select_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is not None, reason="checks the error without it")
def test_quantization_without_bitsandbytes_is_a_clear_error(tiny_lm_dir, tmp_path):
    with pytest.raises(ModelSourceError, match="bitsandbytes is not installed"):
        load_model(str(tiny_lm_dir), "main", settings(tmp_path, use_quantization=True, quantization_type="4bit"))
