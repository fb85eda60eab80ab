"""The whole local mesh (`make run`) on free ports, for the e2e tests and the benchmarks."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from libs.process import exit_with_parent
from tests.support.ports import free_ports
from tests.support.processes import kill_all, wait_for_no_processes

SERVICES = ("gateway", "compliance", "generation", "embedding", "conversation", "monitor")


@dataclass(frozen=True)
class MeshPorts:
    envoy: int
    admin: int
    supervisor_metrics: int
    grpc: dict[str, int]
    metrics: dict[str, int]

    @classmethod
    def allocate(cls) -> MeshPorts:
        ports = free_ports(3 + 2 * len(SERVICES))
        grpc = dict(zip(SERVICES, ports[3:3 + len(SERVICES)], strict=True))
        metrics = dict(zip(SERVICES, ports[3 + len(SERVICES):], strict=True))
        return cls(ports[0], ports[1], ports[2], grpc, metrics)

    def address(self, service: str) -> str:
        return f"127.0.0.1:{self.grpc[service]}"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.envoy}"


def mesh_environment(ports: MeshPorts, state_dir: Path, data_dir: Path, marker: str,
                     tls: bool = True) -> dict[str, str]:
    """Every variable that points the services at each other on these ports (see `.env.example`). Mesh TLS
    as `make run` has it by default (certificates created in the state dir), unless tls is False."""
    scheme = "https" if tls else "http"
    # Not the test process's own TLS_* (its in-process servers run without TLS): the mesh's are its defaults.
    env = {name: value for name, value in os.environ.items() if not name.startswith("TLS_")}
    env.update({
        "TLS_ENABLED": "true" if tls else "false",
        "MEDAI_TEST_MARKER": marker,
        "APP_STATE_DIR": str(state_dir),
        # Log files beside the state, not in the checkout's ./logs (make run's default).
        "APP_LOG_DIR": str(state_dir / "logs"),
        "APP_DATA_DIR": str(data_dir),
        "ENVOY_PORT": str(ports.envoy),
        "ENVOY_ADMIN_PORT": str(ports.admin),
        "ENVOY_BASE_ID": str(ports.admin),
        "ENVOY_GATEWAY_ADDRESS": ports.address("gateway"),
        "ENVOY_CONFIG_PATH": str(state_dir / "envoy.json"),
        "GATEWAY_COMPLIANCE_ADDRESS": ports.address("compliance"),
        "GATEWAY_MONITOR_ADDRESS": ports.address("monitor"),
        "COMPLIANCE_WORKERS": json.dumps([ports.address(s) for s in ("generation", "embedding", "conversation")]),
        "LAUNCHER_METRICS_PORT": str(ports.supervisor_metrics),
        "MONITOR_EXTRA_METRICS": json.dumps({"supervisor": f"http://127.0.0.1:{ports.supervisor_metrics}/metrics"}),
        "MONITOR_SERVICES": json.dumps({
            s: {"address": ports.address(s), "metrics_url": f"{scheme}://127.0.0.1:{ports.metrics[s]}/metrics"}
            for s in SERVICES
        }),
    })
    for service in SERVICES:
        env[f"{service.upper()}_PORT"] = str(ports.grpc[service])
        env[f"{service.upper()}_METRICS_PORT"] = str(ports.metrics[service])
    return env


READY_LINE = "MedServe is up"
ROOT = Path(__file__).resolve().parents[2]


class LocalMesh:
    """A `make run` process on free ports: its output lines, and when it reported every service SERVING."""

    def __init__(self, process: subprocess.Popen, ports: MeshPorts, state_dir: Path, marker: str,
                 data_dir: Path | None = None, tls: bool = True) -> None:
        self.process, self.ports, self.state_dir, self.marker = process, ports, state_dir, marker
        self.data_dir, self.tls = data_dir, tls
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.started = time.monotonic()
        self.seconds_to_serving: float | None = None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            if READY_LINE in line and not self.ready.is_set():
                self.seconds_to_serving = time.monotonic() - self.started
                self.ready.set()
        self.ready.set()  # the process ended: wake the waiter

    def tail(self, count: int = 60) -> str:
        return "\n".join(self.lines[-count:])

    @property
    def key(self) -> str:
        return (self.state_dir / "dev-api-key").read_text().strip()

    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.key}"}


@contextlib.contextmanager
def running_mesh(state_dir: Path, data_dir: Path, extra_env: dict[str, str] | None = None,
                 timeout: float = 600, tls: bool = True) -> Iterator[LocalMesh]:
    """`make run` on free ports; yields once every service reports SERVING (RuntimeError if it does not);
    afterwards SIGTERM, and every process it started is gone (killed if need be)."""
    ports, marker = MeshPorts.allocate(), uuid.uuid4().hex
    env = mesh_environment(ports, state_dir, data_dir, marker, tls) | (extra_env or {})
    # The mesh stops if this process dies (make, then the launcher, get SIGTERM from their parent's death).
    process = subprocess.Popen(["make", "--no-print-directory", "run"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True,
                               preexec_fn=exit_with_parent)
    mesh = LocalMesh(process, ports, state_dir, marker, data_dir, tls)
    try:
        mesh.ready.wait(timeout)
        if process.poll() is not None or mesh.seconds_to_serving is None:
            raise RuntimeError(f"make run did not become ready:\n{mesh.tail()}")
        yield mesh
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
        kill_all(wait_for_no_processes(marker, 15))
