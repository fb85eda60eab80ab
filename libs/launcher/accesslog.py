"""Envoy's access.log under `make run`: Envoy writes the file, the launcher rotates it by size.

Rotation is the logrotate way: the files are renamed (access.log -> access.log.1 -> ... , the oldest beyond
APP_LOG_BACKUP_COUNT removed), then Envoy is told to reopen its access logs (SIGUSR1). Envoy only ever
writes whole lines to the file it has open, so every line lies whole in one file. (Rotating the copy
supervisord made of Envoy's stdout cut lines: it rotates by size between two reads of the pipe, whatever
they hold.)
"""
from __future__ import annotations

import contextlib
import logging
import threading
import xmlrpc.client
from collections.abc import Callable
from pathlib import Path

from supervisor.xmlrpc import SupervisorTransport

from libs.logs import ACCESS_LOG, LogFiles

log = logging.getLogger(__name__)
CHECK_SECONDS = 1.0


class AccessLogRotator:
    """Rotates access.log once it reaches the size limit; `reopen` makes the writer open a new file."""

    def __init__(self, files: LogFiles, reopen: Callable[[], None]) -> None:
        self._path = files.path(ACCESS_LOG)
        self._max_bytes = files.max_bytes
        self._backups = files.backup_count
        self._reopen = reopen
        self._reopen_pending = False  # renamed, but the writer was not told yet (it keeps the old file)

    def rotate_if_due(self) -> bool:
        """Rotate when the file has reached the limit (never without backups, as Python's handler);
        whether it did. A reopen that failed is retried first."""
        if self._reopen_pending:
            self._reopened()
            return False
        if not self._max_bytes or not self._backups:
            return False
        try:
            if self._path.stat().st_size < self._max_bytes:
                return False
        except FileNotFoundError:
            return False
        self._backup(self._backups).unlink(missing_ok=True)
        for number in range(self._backups - 1, 0, -1):
            with contextlib.suppress(FileNotFoundError):
                self._backup(number).rename(self._backup(number + 1))
        self._path.rename(self._backup(1))
        self._reopen_pending = True
        self._reopened()
        return True

    def _reopened(self) -> None:
        self._reopen()
        self._reopen_pending = False

    def run(self, stop: threading.Event) -> None:
        """Check every second until stopped; a failed check is logged and tried again."""
        while not stop.wait(CHECK_SECONDS):
            try:
                self.rotate_if_due()
            except Exception as error:  # e.g. Envoy restarting: the next check tries again
                log.warning("access.log not rotated", extra={"error": type(error).__name__})

    def _backup(self, number: int) -> Path:
        return self._path.with_name(f"{self._path.name}.{number}")


def signal_program(socket: Path, program: str, signal_name: str) -> None:
    """Send a signal to a program supervisord runs (through its control socket)."""
    transport = SupervisorTransport(None, None, f"unix://{socket}")
    proxy = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)
    proxy.supervisor.signalProcess(program, signal_name)
