"""`python -m services.gateway`: wire settings to the key store, downstream clients and the server."""
from __future__ import annotations

from libs.config import GatewaySettings
from libs.service import RunningService, run_service
from services.gateway.server import build_deps, create_server


async def start(settings: GatewaySettings) -> RunningService:
    deps = await build_deps(settings)
    server, port = create_server(settings, deps)

    async def ready() -> None:
        await deps.health.set_serving(True)

    return RunningService(server, port, deps.health, background=[ready, deps.refusals.run], on_stop=[deps.close])


if __name__ == "__main__":
    run_service(GatewaySettings(), start)
