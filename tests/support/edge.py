"""A real Envoy edge for a test: rendered from `EnvoySettings`, ready when its admin says so, always stopped."""
from __future__ import annotations

import contextlib
import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from libs.config import EnvoySettings
from libs.envoy import envoy_command, render_config
from libs.envoy.tls import write_sds_files

READY_TIMEOUT_SECONDS = 20.0
STOP_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class RunningEdge:
    settings: EnvoySettings
    process: subprocess.Popen
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.settings.port}"

    def access_log_lines(self) -> list[str]:
        """Complete lines written so far (a flush may end mid-line)."""
        path = Path(self.settings.access_log_path)
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        return text[: text.rfind("\n") + 1].splitlines()


@contextlib.contextmanager
def running_edge(
    settings: EnvoySettings, workdir: Path, adjust: Callable[[dict[str, Any]], None] | None = None
) -> Iterator[RunningEdge]:
    """Envoy on these settings (base id = admin port, so parallel runs never share memory).

    `adjust` may tune the rendered bootstrap (e.g. a faster span flush) before it is written."""
    config = render_config(settings)
    write_sds_files(settings)  # the certificates' SDS files (mesh TLS, edge TLS), when there are any
    if adjust:
        adjust(config)
    config_path = workdir / "envoy.json"
    config_path.write_text(json.dumps(config), encoding="utf-8")
    log_path = workdir / "envoy.log"
    with log_path.open("wb") as log:
        argv = envoy_command(config_path, settings.admin_port, flush_interval_ms=50)
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_ready(process, settings.admin_port, log_path)
        yield RunningEdge(settings, process, log_path)
    finally:
        stop_process(process)


def stop_process(process: subprocess.Popen) -> None:
    """Terminate, wait, and kill when it does not stop in time."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(STOP_TIMEOUT_SECONDS)


def _wait_ready(process: subprocess.Popen, admin_port: int, log_path: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"envoy exited with {process.returncode}: {log_path.read_text()[-2000:]}")
        if _is_ready(admin_port):
            return
        time.sleep(0.02)
    raise TimeoutError(f"envoy not ready after {READY_TIMEOUT_SECONDS}s: {log_path.read_text()[-2000:]}")


def _is_ready(admin_port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/ready", timeout=1) as answer:
            return answer.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False
