"""Find and stop the processes a test started, by an environment marker they all inherit."""
from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path


def processes_with_marker(marker: str) -> list[int]:
    """PIDs whose environment holds MEDAI_TEST_MARKER=<marker>."""
    needle = f"MEDAI_TEST_MARKER={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def wait_for_no_processes(marker: str, timeout: float) -> list[int]:
    """Poll until no marked process is left; returns those still alive at the deadline."""
    deadline = time.monotonic() + timeout
    alive = processes_with_marker(marker)
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = processes_with_marker(marker)
    return alive


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def service_pid(marker: str, service: str) -> int:
    """The pid of the marked `python -m services.<service>` process (AssertionError when none runs)."""
    for pid in processes_with_marker(marker):
        try:
            if f"services.{service}" in (Path("/proc") / str(pid) / "cmdline").read_bytes().decode(errors="replace"):
                return pid
        except OSError:
            continue
    raise AssertionError(f"no {service} process")
