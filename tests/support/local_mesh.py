"""Environment for running the whole local mesh (`make run`) on free ports in a test."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from tests.support.ports import free_ports

SERVICES = ("gateway", "compliance", "generation", "embedding", "conversation", "monitor")


@dataclass(frozen=True)
class MeshPorts:
    envoy: int
    admin: int
    grpc: dict[str, int]
    metrics: dict[str, int]

    @classmethod
    def allocate(cls) -> MeshPorts:
        ports = free_ports(2 + 2 * len(SERVICES))
        grpc = dict(zip(SERVICES, ports[2:2 + len(SERVICES)], strict=True))
        metrics = dict(zip(SERVICES, ports[2 + len(SERVICES):], strict=True))
        return cls(ports[0], ports[1], grpc, metrics)

    def address(self, service: str) -> str:
        return f"127.0.0.1:{self.grpc[service]}"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.envoy}"


def mesh_environment(ports: MeshPorts, state_dir: Path, data_dir: Path, marker: str) -> dict[str, str]:
    """Every variable that points the services at each other on these ports (see `.env.example`)."""
    env = dict(os.environ)
    env.update({
        "MEDAI_TEST_MARKER": marker,
        "APP_STATE_DIR": str(state_dir),
        "APP_DATA_DIR": str(data_dir),
        "ENVOY_PORT": str(ports.envoy),
        "ENVOY_ADMIN_PORT": str(ports.admin),
        "ENVOY_BASE_ID": str(ports.admin),
        "ENVOY_GATEWAY_ADDRESS": ports.address("gateway"),
        "ENVOY_CONFIG_PATH": str(state_dir / "envoy.json"),
        "GATEWAY_COMPLIANCE_ADDRESS": ports.address("compliance"),
        "GATEWAY_MONITOR_ADDRESS": ports.address("monitor"),
        "COMPLIANCE_WORKERS": json.dumps([ports.address(s) for s in ("generation", "embedding", "conversation")]),
        "MONITOR_SERVICES": json.dumps({
            s: {"address": ports.address(s), "metrics_url": f"http://127.0.0.1:{ports.metrics[s]}/metrics"}
            for s in SERVICES
        }),
    })
    for service in SERVICES:
        env[f"{service.upper()}_PORT"] = str(ports.grpc[service])
        env[f"{service.upper()}_METRICS_PORT"] = str(ports.metrics[service])
    return env
