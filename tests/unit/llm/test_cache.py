"""The disk model cache: built once, atomically; a crash leaves nothing a later load would trust."""
from __future__ import annotations

from pathlib import Path

import pytest

from libs.llm.cache import MANIFEST, ModelCache


def writer(calls: list[Path]):
    def build(target: Path, stage) -> None:
        stage("writing")
        calls.append(target)
        target.mkdir()
        (target / "model.safetensors").write_text("weights")

    return build


def test_an_entry_is_built_once_and_then_reused(tmp_path):
    cache, calls = ModelCache(tmp_path / "cache"), []
    first, built = cache.get_or_build("tiny", "f" * 64, writer(calls))
    assert built and (first / "model.safetensors").read_text() == "weights" and (first / MANIFEST).is_file()
    again, built_again = cache.get_or_build("tiny", "f" * 64, writer(calls))
    assert (again, built_again) == (first, False)
    assert len(calls) == 1
    other, _ = cache.get_or_build("tiny", "e" * 64, writer(calls))
    assert other != first and len(calls) == 2


def test_a_failed_build_leaves_no_entry_and_no_temporary_files(tmp_path):
    cache = ModelCache(tmp_path / "cache")

    def crash(target: Path, stage) -> None:
        target.mkdir()
        (target / "model.safetensors").write_text("half")
        raise RuntimeError("killed mid-way")

    with pytest.raises(RuntimeError):
        cache.get_or_build("tiny", "f" * 64, crash)
    assert cache.lookup("tiny", "f" * 64) is None
    assert [path.name for path in cache.root.iterdir()] == [cache.entry_path("tiny", "f" * 64).name + ".lock"]


def test_leftovers_of_a_crashed_process_are_replaced(tmp_path):
    cache, calls = ModelCache(tmp_path / "cache"), []
    final = cache.entry_path("tiny", "f" * 64)
    leftover = final.with_name(f".{final.name}.tmp-deadbeef")
    leftover.mkdir(parents=True)
    final.mkdir()  # renamed without a manifest cannot happen, but a hand-made folder can
    (final / "model.safetensors").write_text("stale")
    assert cache.lookup("tiny", "f" * 64) is None
    path, built = cache.get_or_build("tiny", "f" * 64, writer(calls))
    assert built and (path / "model.safetensors").read_text() == "weights"
    assert not leftover.exists()


def test_entry_names_are_safe_folder_names(tmp_path):
    path = ModelCache(tmp_path).entry_path("../../etc/passwd model", "a" * 64)
    assert path.parent == tmp_path and "/" not in path.name and not path.name.startswith(".")


def test_a_build_shows_a_progress_bar_on_the_terminal(tmp_path, capfd):
    def build(target: Path, stage) -> None:
        target.mkdir()
        for name in ("reading", "writing", "tokenizer"):
            stage(name)
            (target / name).write_text(name)

    ModelCache(tmp_path).get_or_build("tiny", "f" * 64, build, stages=3)
    err = capfd.readouterr().err
    assert "model cache: tiny" in err and "3/3" in err and "tokenizer" in err
