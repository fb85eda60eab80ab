"""The Docker engine: use the one that answers, or start `dockerd` for the run and stop it after.

A dockerd started here has no container network of its own (`--bridge=none --iptables=false`):
containers share the host's network namespace (compose's host-network override), so all their
traffic stays on loopback and the host's firewall rules are left alone.
"""
from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from libs.deploy.commands import DeployError, log, run

DOCKERD_FLAGS = ("--bridge=none", "--iptables=false")
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0


def engine_answers(docker: str) -> bool:
    """True when the engine behind this CLI answers (`docker version` reaches the server)."""
    try:
        return run([docker, "version", "--format", "{{.Server.Version}}"], check=False, timeout=15).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def start_dockerd(log_path: Path) -> subprocess.Popen[bytes]:
    """Start dockerd in its own session (Ctrl-C reaches us, and we stop it in order)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as sink:
        return subprocess.Popen(["dockerd", *DOCKERD_FLAGS], stdout=sink, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def wait_until_answering(docker: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DeployError(f"dockerd exited with {process.returncode} while starting")
        if engine_answers(docker):
            return
        time.sleep(0.5)
    raise DeployError(f"dockerd did not answer within {timeout:.0f} s")


def stop_dockerd(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (dockerd stops its containerd and containers), SIGKILL if it hangs."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        log.warning("dockerd did not stop within %.0f s: killing it", STOP_TIMEOUT_SECONDS)
        process.kill()
        process.wait()
    log.info("stopped the dockerd this run started (pid %d)", process.pid)


@contextlib.contextmanager
def docker_engine(docker: str, log_path: Path) -> Iterator[bool]:
    """An answering engine for the block; yields whether this run started (and will stop) it."""
    if engine_answers(docker):
        log.info("using the Docker engine that is already running")
        yield False
        return
    process = start_dockerd(log_path)
    log.info("started dockerd %s (pid %d; log %s)", " ".join(DOCKERD_FLAGS), process.pid, log_path)
    try:
        wait_until_answering(docker, process, START_TIMEOUT_SECONDS)
        yield True
    finally:
        stop_dockerd(process)
