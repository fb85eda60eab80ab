"""Envoy's access.log under `make run`: Envoy writes it, the launcher rotates it (rename, then reopen)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from libs.launcher.accesslog import AccessLogRotator
from libs.logs import LogFiles

LINE = '{"method":"GET","path":"/health","status":200}\n'


class _Writer:
    """Writes lines as Envoy does: to the file it has open, until told to reopen the path."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.reopened = 0
        self._file = path.open("a")

    def write(self, count: int) -> None:
        self._file.write(LINE * count)
        self._file.flush()

    def reopen(self) -> None:
        self._file.close()
        self._file = self.path.open("a")
        self.reopened += 1


def test_lines_stay_whole_across_rotations_and_old_files_beyond_the_count_go(tmp_path):
    files = LogFiles(tmp_path, max_bytes=10 * len(LINE), backup_count=2)
    writer = _Writer(files.path("access.log"))
    rotator = AccessLogRotator(files, writer.reopen)
    rotated = 0
    for _ in range(7):
        writer.write(8)
        rotator.rotate_if_due()
        writer.write(4)  # written after the rename and the reopen
        rotated += rotator.rotate_if_due()
    names = sorted(path.name for path in tmp_path.iterdir())
    assert names == ["access.log", "access.log.1", "access.log.2"]
    assert writer.reopened == rotated >= 4
    for path in tmp_path.iterdir():
        text = path.read_text()
        assert text == LINE * (len(text) // len(LINE))  # whole lines only
    assert all(os.path.getsize(tmp_path / name) >= 10 * len(LINE) for name in names[1:])


@pytest.fixture
def failing_once(tmp_path):
    calls = []

    def reopen() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionRefusedError("supervisord busy")
    return reopen, calls


def test_a_reopen_that_failed_is_retried_at_the_next_check(tmp_path, failing_once):
    reopen, calls = failing_once
    files = LogFiles(tmp_path, max_bytes=len(LINE), backup_count=3)
    (tmp_path / "access.log").write_text(LINE * 2)
    rotator = AccessLogRotator(files, reopen)
    with pytest.raises(ConnectionRefusedError):
        rotator.rotate_if_due()
    assert (tmp_path / "access.log.1").exists() and not (tmp_path / "access.log").exists()
    assert rotator.rotate_if_due() is False and len(calls) == 2  # the retry, no second rename
    assert sorted(path.name for path in tmp_path.iterdir()) == ["access.log.1"]


def test_without_backups_or_a_limit_nothing_rotates(tmp_path):
    (tmp_path / "access.log").write_text(LINE * 100)
    for files in (LogFiles(tmp_path, max_bytes=len(LINE), backup_count=0), LogFiles(tmp_path, 0, 5)):
        assert AccessLogRotator(files, lambda: None).rotate_if_due() is False
    assert sorted(path.name for path in tmp_path.iterdir()) == ["access.log"]
