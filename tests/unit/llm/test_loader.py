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


def pickle_folder(tiny_lm_dir: Path, folder: Path, **extra: object) -> Path:
    """The tiny model with its weights as a PyTorch pickle (plus `extra` entries) instead of safetensors."""
    from transformers import AutoModelForCausalLM

    shutil.copytree(tiny_lm_dir, folder, ignore=shutil.ignore_patterns("*.safetensors"))
    state = AutoModelForCausalLM.from_pretrained(tiny_lm_dir).state_dict()
    torch.save({**state, **extra}, folder / "pytorch_model.bin")
    return folder


def test_pytorch_weights_load_as_tensors_only_and_are_converted_once(tiny_lm_dir, tmp_path, capfd):
    folder = pickle_folder(tiny_lm_dir, tmp_path / "pickled")
    first = load_model(str(folder), "main", settings(tmp_path))
    assert first.converted and "model cache: pickled" in capfd.readouterr().err  # the progress bar
    second = load_model(str(folder), "main", settings(tmp_path))
    assert not second.converted
    assert greedy_tokens(second) == greedy_tokens(first) == greedy_tokens(load_model(str(tiny_lm_dir), "main",
                                                                                     settings(tmp_path)))


class Payload:
    """Anything but a tensor: unpickling it means running code the file names."""


def test_arbitrary_pickle_is_refused_with_the_reason(tiny_lm_dir, tmp_path):
    folder = pickle_folder(tiny_lm_dir, tmp_path / "pickled", payload=Payload())
    with pytest.raises(ModelSourceError) as caught:
        load_model(str(folder), "main", settings(tmp_path))
    message = caught.value.message
    assert "pytorch_model.bin" in message and "arbitrary code" in message and "MODEL_ALLOW_PICKLE=true" in message
    assert not [path for path in (tmp_path / "cache").iterdir() if path.is_dir()]  # nothing half-converted


def test_arbitrary_pickle_loads_when_allowed(tiny_lm_dir, tmp_path):
    folder = pickle_folder(tiny_lm_dir, tmp_path / "pickled", payload=Payload())
    loaded = load_model(str(folder), "main", settings(tmp_path, allow_pickle=True))
    assert greedy_tokens(loaded) == greedy_tokens(load_model(str(tiny_lm_dir), "main", settings(tmp_path)))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without a GPU")
def test_cuda_without_a_gpu_is_a_clear_error():
    assert select_device("auto") == torch.device("cpu")
    with pytest.raises(ModelSourceError, match="no CUDA device"):
        select_device("cuda")


def test_dtype_choice():
    assert select_dtype("auto", torch.device("cpu")) == torch.float32
    assert select_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16


def test_pytorch_weights_missing_a_tensor_are_refused(tiny_lm_dir, tmp_path):
    folder = pickle_folder(tiny_lm_dir, tmp_path / "pickled")
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    del state["transformer.h.0.attn.c_attn.weight"]
    torch.save(state, folder / "pytorch_model.bin")
    with pytest.raises(ModelSourceError, match="lack 1 tensor"):
        load_model(str(folder), "main", settings(tmp_path))


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="the quantization extra is not installed")
@pytest.mark.parametrize(("kind", "layer"), [("8bit", "Linear8bitLt"), ("4bit", "Linear4bit")])
def test_bitsandbytes_quantization_loads_and_generates_on_cpu(wide_lm_dir, tmp_path, kind, layer):
    plain = load_model(str(wide_lm_dir), "main", settings(tmp_path))
    loaded = load_model(str(wide_lm_dir), "main", settings(tmp_path, use_quantization=True, quantization_type=kind))
    assert type(loaded.model.transformer.h[0].attn.c_attn).__name__ == layer
    description = loaded.description
    assert (description.quantization, description.device) == (kind, "cpu")
    assert description.parameter_count == plain.description.parameter_count  # as trained, not as packed
    assert description.memory_bytes < plain.description.memory_bytes
    tokens = greedy_tokens(loaded)
    assert len(tokens) == 8 and all(0 <= token < len(loaded.tokenizer) for token in tokens)


def test_quantization_without_bitsandbytes_is_a_clear_error(tiny_lm_dir, tmp_path, monkeypatch):
    find_spec = importlib.util.find_spec
    # Where the extra is installed, pretend it is not (uninstalling it here is not an option).
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else
                        find_spec(name, *a))
    with pytest.raises(ModelSourceError, match="bitsandbytes is not installed"):
        load_model(str(tiny_lm_dir), "main", settings(tmp_path, use_quantization=True, quantization_type="4bit"))
