"""The disk model cache: a converted model is built once, atomically, and reused by later loads.

An entry is built in a temporary folder next to its final place and renamed into place only
once complete (with its manifest), so a crash never leaves a half model that a later load
would trust. A file lock keeps two processes (e.g. the generation and conversation workers
starting together) from converting the same model twice. A progress bar on the terminal
(stderr) follows the build's stages.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from filelock import FileLock
from tqdm import tqdm

log = logging.getLogger(__name__)

MANIFEST = "medai-cache.json"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
# A build writes a model into the folder given, calling `stage("what now")` as it starts each stage.
Stage = Callable[[str], None]
Build = Callable[[Path, Stage], None]


class ModelCache:
    """Converted models under one root folder, one entry per (name, fingerprint)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def entry_path(self, name: str, fingerprint: str) -> Path:
        return self.root / f"{_UNSAFE.sub('-', name).strip('-.')[:64] or 'model'}-{fingerprint[:20]}"

    def lookup(self, name: str, fingerprint: str) -> Path | None:
        """The complete entry, or None."""
        path = self.entry_path(name, fingerprint)
        return path if (path / MANIFEST).is_file() else None

    def get_or_build(self, name: str, fingerprint: str, build: Build, stages: int = 1) -> tuple[Path, bool]:
        """The entry's folder and whether it was built now; `build` has `stages` stages (for the progress bar)."""
        if (found := self.lookup(name, fingerprint)) is not None:
            return found, False
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.entry_path(name, fingerprint)
        with FileLock(str(final) + ".lock"):
            if (found := self.lookup(name, fingerprint)) is not None:
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
                temporary.rename(final)
            finally:
                shutil.rmtree(temporary, ignore_errors=True)
        log.info("model cache entry built", extra={"entry": final.name, "seconds": round(manifest["built_seconds"], 2)})
        return final, True

    def _remove_leftovers(self, final: Path) -> None:
        """Remove what a crashed build left (we hold the lock, so nothing is being built)."""
        for leftover in self.root.glob(f".{final.name}.tmp-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        if final.exists():  # present without a manifest: incomplete
            shutil.rmtree(final, ignore_errors=True)


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
