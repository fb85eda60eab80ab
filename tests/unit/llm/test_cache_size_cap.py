"""The disk model cache's size cap (MODEL_CACHE_MAX_BYTES): least recently used entries that no running
process holds are evicted when a new one would pass it, each with a log line."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from libs.config import ModelSettings
from libs.llm import cache as cache_module
from libs.llm.cache import MANIFEST, ModelCache

ROOT = Path(__file__).resolve().parents[3]
KB = 1024


@pytest.fixture(autouse=True)
def no_holds() -> Iterator[None]:
    """Each test starts and ends with this process holding no entry."""
    cache_module.release_all()
    yield
    cache_module.release_all()


def weights(size: int):
    def build(target: Path, stage) -> None:
        target.mkdir()
        (target / "model.safetensors").write_bytes(b"w" * size)

    return build


def add(cache: ModelCache, name: str, size: int = 10 * KB) -> Path:
    path, built = cache.get_or_build(name, name * 8, weights(size))
    assert built
    return path


def age(path: Path, seconds_ago: float) -> None:
    """Pretend the entry was last used that long ago (the LRU order is its hold file's mtime)."""
    stamp = time.time() - seconds_ago
    os.utime(path.with_name(path.name + ".hold"), (stamp, stamp))


def names(cache: ModelCache) -> set[str]:
    return {entry.path.name.split("-")[0] for entry in cache.entries()}


def test_without_a_cap_nothing_is_evicted(tmp_path):
    cache = ModelCache(tmp_path)
    for name in "abcd":
        add(cache, name, 100 * KB)
    assert names(cache) == set("abcd")


def test_the_least_recently_used_unheld_entries_go_first_with_a_log_line(tmp_path, caplog):
    cache = ModelCache(tmp_path, max_bytes=35 * KB)
    paths = {name: add(cache, name) for name in "abc"}
    cache_module.release_all()  # as if the processes that used them had exited
    age(paths["a"], 300)
    age(paths["b"], 600)  # b: least recently used
    age(paths["c"], 100)
    with caplog.at_level(logging.INFO, logger="libs.llm.cache"):
        add(cache, "d")  # 40 KB > 35 KB: one entry must go
    assert names(cache) == {"a", "c", "d"}
    assert not paths["b"].exists()
    evictions = [r for r in caplog.records if r.getMessage().startswith("model cache entry evicted")]
    assert [r.entry for r in evictions] == [paths["b"].name]
    assert evictions[0].bytes >= 10 * KB and evictions[0].max_bytes == 35 * KB


def test_a_use_refreshes_an_entrys_place_in_the_order(tmp_path):
    cache = ModelCache(tmp_path, max_bytes=25 * KB)
    old, new = add(cache, "a"), add(cache, "b")
    cache_module.release_all()
    age(old, 600)
    age(new, 300)
    manifest_built = (old / MANIFEST).stat().st_mtime_ns
    again, built = cache.get_or_build("a", "a" * 8, weights(10 * KB))  # "a" used now
    assert (again, built) == (old, False)
    assert (old / MANIFEST).stat().st_mtime_ns == manifest_built, "a use leaves the manifest as built"
    cache_module.release_all()
    add(cache, "c")
    assert names(cache) == {"a", "c"}


def test_entries_this_process_holds_are_kept(tmp_path, caplog):
    cache = ModelCache(tmp_path, max_bytes=15 * KB)
    held = add(cache, "a")  # held: this process loaded it
    with caplog.at_level(logging.WARNING, logger="libs.llm.cache"):
        add(cache, "b")
    assert held.is_dir() and names(cache) == {"a", "b"}
    assert any("stays over its cap" in r.getMessage() for r in caplog.records)


HOLDER = """
import sys
from pathlib import Path
from libs.llm.cache import ModelCache

def build(target, stage):
    raise AssertionError("the entry exists: nothing to build")

path, built = ModelCache(Path(sys.argv[1])).get_or_build(sys.argv[2], sys.argv[2] * 8, build)
print(path, flush=True)
sys.stdin.readline()  # hold it until told to exit
"""


def test_an_entry_another_running_process_holds_is_kept_until_it_exits(tmp_path):
    cache = ModelCache(tmp_path, max_bytes=25 * KB)
    paths = {name: add(cache, name) for name in "ab"}
    cache_module.release_all()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path), "a"], cwd=ROOT, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == str(paths["a"])
        age(paths["a"], 600)  # the oldest, but held by another process
        age(paths["b"], 300)
        add(cache, "c")
        assert names(cache) == {"a", "c"}  # b went instead of the held a
        cache_module.release_all()
    finally:
        holder.communicate("\n", timeout=30)
    assert holder.returncode == 0
    age(paths["a"], 600)
    add(cache, "d")  # now a is free to go
    assert names(cache) == {"c", "d"}


def test_the_loader_caps_its_cache_from_the_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("MODEL_CACHE_MAX_BYTES", "123456")
    assert ModelSettings().cache_max_bytes == 123456
    seen: list[int] = []

    class Spy(ModelCache):
        def __init__(self, root: Path, max_bytes: int = 0) -> None:
            seen.append(max_bytes)
            super().__init__(root, max_bytes)

    from libs.llm import loader

    monkeypatch.setattr(loader, "ModelCache", Spy)
    monkeypatch.setattr(loader, "resolve_source", lambda source, options: (_ for _ in ()).throw(RuntimeError("stop")))
    with pytest.raises(RuntimeError, match="stop"):
        loader.load_model("anything", "main", ModelSettings(cache_dir=tmp_path))
    assert seen == [123456]
