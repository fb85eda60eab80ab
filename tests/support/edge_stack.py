"""Envoy -> gateway -> compliance (real Presidio) -> spy worker, every one a real server on 127.0.0.1."""
from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from libs.config import AppSettings, EnvoySettings, GatewaySettings, TelemetrySettings
from libs.stores.keys import KeyLimits
from tests.fixtures.compliance import running_compliance
from tests.support.edge import running_edge
from tests.support.ports import free_ports
from tests.support.spy_worker import SpyWorker, running_spy

BURST = 6
GENERATION_DEADLINE = 50.0
GATEWAY_MAX_BYTES = 65_536  # below Envoy's 1 MiB body limit


@dataclass
class Stack:
    base_url: str
    grpc_target: str
    spy: SpyWorker
    keys: object

    async def new_key(self, role: str = "admin", rpm: int | None = None) -> str:
        limits = KeyLimits(requests_per_minute=rpm)
        return (await self.keys.create(name="edge test", role=role, limits=limits))[1]


@contextlib.asynccontextmanager
async def edge_stack(tmp_path, deidentifier) -> AsyncIterator[Stack]:
    from services.gateway.server import build_deps, create_server

    async with running_spy() as spy, running_compliance([spy.address], deidentifier) as compliance:
        settings = GatewaySettings(
            host="127.0.0.1", port=0, metrics_port=0, compliance_address=compliance.address,
            monitor_address="127.0.0.1:1", catalog_ttl_seconds=0,
            max_request_bytes=GATEWAY_MAX_BYTES,
            model_type_deadline_seconds={"text-generation": GENERATION_DEADLINE},
            app=AppSettings(environment="test", state_dir=tmp_path / "state", data_dir=tmp_path / "data"),
        )
        deps = await build_deps(settings)
        server, port = create_server(settings, deps)
        await server.start()
        await deps.health.set_serving(True)
        envoy_port, admin_port = free_ports(2)
        edge = EnvoySettings(port=envoy_port, admin_port=admin_port, base_id=admin_port,
                             gateway_address=f"127.0.0.1:{port}", access_log_path=str(tmp_path / "access.log"),
                             telemetry=TelemetrySettings(sdk_disabled=True))
        try:
            with running_edge(edge, tmp_path):
                yield Stack(f"http://127.0.0.1:{envoy_port}", f"127.0.0.1:{envoy_port}", spy, deps.keys)
        finally:
            await server.stop(None)
            await deps.close()



