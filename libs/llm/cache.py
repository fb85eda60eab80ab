"""The disk model cache: a converted model is built once, atomically, and reused by later loads.

An entry is built in a temporary folder next to its final place and renamed into place only
once complete (with its manifest), so a crash never leaves a half model that a later load
would trust. A file lock keeps two processes (e.g. the generation and conversation workers
starting together) from converting the same model twice. A progress bar on the terminal
(stderr) follows the build's stages.

A size cap (`max_bytes`, MODEL_CACHE_MAX_BYTES): when a new entry would pass it, the least
recently used entries that no running process holds are removed first, each with a log line. A
process holds every entry it uses, until it exits, by a shared lock on the entry's `.hold` file;
eviction takes that lock exclusively without waiting, so a held entry is never removed. Each use
touches the hold file: its modification time orders the entries (the manifest stays as built).
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock
from tqdm import tqdm

log = logging.getLogger(__name__)

MANIFEST = "medai-cache.json"
HOLD_SUFFIX = ".hold"
EVICTION_LOCK = ".eviction.lock"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
# A build writes a model into the folder given, calling `stage("what now")` as it starts each stage.
Stage = Callable[[str], None]
Build = Callable[[Path, Stage], None]
# Hold files this process has a shared lock on (path -> descriptor), kept until it exits.
_HELD: dict[str, int] = {}


@dataclass(frozen=True)
class Entry:
    path: Path
    size_bytes: int
    last_used: float  # epoch seconds


class ModelCache:
    """Converted models under one root folder, one entry per (name, fingerprint); at most `max_bytes`
    of them (0: no cap) unless held ones alone take more."""

    def __init__(self, root: Path, max_bytes: int = 0) -> None:
        self.root = root
        self.max_bytes = max_bytes

    def entry_path(self, name: str, fingerprint: str) -> Path:
        return self.root / f"{_UNSAFE.sub('-', name).strip('-.')[:64] or 'model'}-{fingerprint[:20]}"

    def lookup(self, name: str, fingerprint: str) -> Path | None:
        """The complete entry, or None."""
        path = self.entry_path(name, fingerprint)
        return path if (path / MANIFEST).is_file() else None

    def get_or_build(self, name: str, fingerprint: str, build: Build, stages: int = 1) -> tuple[Path, bool]:
        """The entry's folder (held by this process from now on) and whether it was built now; `build` has
        `stages` stages (for the progress bar)."""
        if (found := self._use(name, fingerprint)) is not None:
            return found, False
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.entry_path(name, fingerprint)
        with FileLock(str(final) + ".lock"):
            if (found := self._use(name, fingerprint)) is not None:
                return found, False  # another process built it while we waited
            self._remove_leftovers(final)
            temporary = final.with_name(f".{final.name}.tmp-{uuid.uuid4().hex}")
            try:
                started = time.perf_counter()
                log.info("building model cache entry (once)", extra={"entry": final.name})
                with progress_bar(f"model cache: {final.name[:40]}", stages) as stage:
                    build(temporary, stage)
                manifest = {"name": name, "fingerprint": fingerprint, "built_seconds": time.perf_counter() - started}
                (temporary / MANIFEST).write_text(json.dumps(manifest))
                _sync(temporary)  # on disk before the rename makes the entry visible
                hold(self._hold_path(final))  # before it is visible: no eviction can take it
                self.make_room(_folder_size(temporary), keep=final)
                temporary.rename(final)
            finally:
                shutil.rmtree(temporary, ignore_errors=True)
        log.info("model cache entry built", extra={"entry": final.name, "seconds": round(manifest["built_seconds"], 2)})
        return final, True

    def entries(self) -> list[Entry]:
        """Complete entries, least recently used first."""
        if not self.root.is_dir():
            return []
        found = []
        for path in self.root.iterdir():
            manifest = path / MANIFEST
            if path.name.startswith(".") or not path.is_dir() or not manifest.is_file():
                continue
            with contextlib.suppress(FileNotFoundError):  # evicted meanwhile
                found.append(Entry(path, _folder_size(path), self._last_used(path)))
        return sorted(found, key=lambda entry: (entry.last_used, entry.path.name))

    def make_room(self, incoming_bytes: int, keep: Path | None = None) -> None:
        """Evict least recently used, unheld entries until `incoming_bytes` more fit under the cap."""
        if not self.max_bytes:
            return
        with FileLock(str(self.root / EVICTION_LOCK)):
            for leftover in self.root.glob(".*.evict-*"):  # an eviction that crashed mid-way
                shutil.rmtree(leftover, ignore_errors=True)
            entries = [entry for entry in self.entries() if entry.path != keep]
            total = incoming_bytes + sum(entry.size_bytes for entry in entries)
            for entry in entries:
                if total <= self.max_bytes:
                    return
                if self._evict(entry):
                    total -= entry.size_bytes
            if total > self.max_bytes:
                log.warning("model cache stays over its cap: the remaining entries are in use",
                            extra={"bytes": total, "max_bytes": self.max_bytes})

    def _evict(self, entry: Entry) -> bool:
        """Remove the entry unless a running process holds it; whether it was removed."""
        descriptor = os.open(self._hold_path(entry.path), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # held by a running process (maybe this one)
            doomed = entry.path.with_name(f".{entry.path.name}.evict-{uuid.uuid4().hex}")
            entry.path.rename(doomed)  # gone for lookups at once; the files go after
        finally:
            os.close(descriptor)
        shutil.rmtree(doomed, ignore_errors=True)
        last_used = datetime.fromtimestamp(entry.last_used, UTC).isoformat(timespec="seconds")
        log.info("model cache entry evicted (least recently used, cache over its cap)",
                 extra={"entry": entry.path.name, "bytes": entry.size_bytes, "last_used": last_used,
                        "max_bytes": self.max_bytes})
        return True

    def _use(self, name: str, fingerprint: str) -> Path | None:
        """The complete entry, held by this process and marked used now; None when absent."""
        path = self.entry_path(name, fingerprint)
        if not (path / MANIFEST).is_file():
            return None
        hold(self._hold_path(path))
        if not (path / MANIFEST).is_file():
            return None  # evicted between the check and the hold: build it again
        with contextlib.suppress(OSError):  # a read-only cache: the order is only a hint
            os.utime(self._hold_path(path))  # last use, for the LRU order
        return path

    def _last_used(self, entry: Path) -> float:
        """When a process last used the entry (its hold file), else when it was built."""
        try:
            return self._hold_path(entry).stat().st_mtime
        except FileNotFoundError:
            return (entry / MANIFEST).stat().st_mtime

    def _hold_path(self, entry: Path) -> Path:
        return entry.with_name(entry.name + HOLD_SUFFIX)

    def _remove_leftovers(self, final: Path) -> None:
        """Remove what a crashed build left (we hold the lock, so nothing is being built)."""
        for leftover in self.root.glob(f".{final.name}.tmp-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        if final.exists():  # present without a manifest: incomplete
            shutil.rmtree(final, ignore_errors=True)


def hold(path: Path) -> None:
    """Hold the entry whose hold file this is until the process exits (a shared lock)."""
    key = str(path)
    if key in _HELD:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(descriptor, fcntl.LOCK_SH)  # waits out an eviction in progress
    _HELD[key] = descriptor


def release_all() -> None:
    """Drop every hold of this process (tests; a process that exits drops them anyway)."""
    while _HELD:
        _, descriptor = _HELD.popitem()
        os.close(descriptor)


def _folder_size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def _sync(folder: Path) -> None:
    """fsync every file of the folder, then the folder itself."""
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def progress_bar(description: str, stages: int) -> Iterator[Stage]:
    """A tqdm bar on stderr over a build's stages; the bar completes only when the build succeeds."""
    bar = tqdm(total=stages, desc=description, unit="stage", file=sys.stderr, dynamic_ncols=True, mininterval=0)
    started = [False]

    def stage(text: str) -> None:
        if started[0]:
            bar.update(1)
        started[0] = True
        bar.set_postfix_str(text)

    try:
        yield stage
        bar.update(bar.total - bar.n)
        bar.set_postfix_str("done")
    finally:
        bar.close()
