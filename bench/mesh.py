"""Start the whole local mesh (`make run`) on free ports for a benchmark, and stop it afterwards."""
from __future__ import annotations

import contextlib
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.support.local_mesh import MeshPorts, mesh_environment
from tests.support.processes import kill_all, wait_for_no_processes

ROOT = Path(__file__).resolve().parents[1]
READY_LINE = "MedServe is up"


@dataclass
class Mesh:
    ports: MeshPorts
    state_dir: Path
    seconds_to_serving: float

    @property
    def key(self) -> str:
        return (self.state_dir / "dev-api-key").read_text().strip()


@contextlib.contextmanager
def running_mesh(timeout: float = 900, env: Mapping[str, str] | None = None) -> Iterator[Mesh]:
    """`make run` on free ports (plus `env` settings); yields once every service reports SERVING."""
    with tempfile.TemporaryDirectory() as tmp:
        state, data = Path(tmp, "state"), Path(tmp, "data")
        ports, marker = MeshPorts.allocate(), uuid.uuid4().hex
        started = time.monotonic()
        process = subprocess.Popen(["make", "--no-print-directory", "run"], cwd=ROOT,
                                   env=mesh_environment(ports, state, data, marker) | dict(env or {}),
                                   stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, start_new_session=True)
        ready = threading.Event()
        ready_at: list[float] = []
        tail: list[str] = []

        def read() -> None:
            for line in process.stdout:
                tail.append(line)
                del tail[:-40]
                if READY_LINE in line and not ready_at:
                    ready_at.append(time.monotonic())
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        try:
            ready.wait(timeout)
            if not ready_at:
                raise RuntimeError("mesh did not start:\n" + "".join(tail))
            yield Mesh(ports, state, ready_at[0] - started)
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(60)
                except subprocess.TimeoutExpired:
                    process.kill()
            kill_all(wait_for_no_processes(marker, 15))
