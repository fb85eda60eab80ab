"""`python -m services.gateway`: wire settings to the key store, downstream clients and the server."""
from __future__ import annotations

import time

from libs.config import GatewaySettings
from libs.rpc.health import HealthReporter
from libs.security.secret import load_secret
from libs.service import RunningService, run_service
from libs.stores.db import open_database
from libs.stores.keys import KeyStore
from services.gateway.clients import ComplianceClient, MonitorClient
from services.gateway.core.auth import Authenticator
from services.gateway.core.catalog import ModelCatalog
from services.gateway.core.gateway import Gateway, GatewayLimits
from services.gateway.core.model import ServiceStatus
from services.gateway.server import SERVICE_NAMES, GatewayDeps, create_server


async def start(settings: GatewaySettings) -> RunningService:
    db = await open_database(settings.app.resolved_database_url())
    keys = KeyStore(db, load_secret(settings.app))
    await keys.migrate()
    compliance = ComplianceClient(settings.compliance_address)
    monitor = MonitorClient(settings.monitor_address)
    gateway = Gateway(
        Authenticator(keys, settings.key_cache_ttl_seconds),
        ModelCatalog(compliance, settings.catalog_ttl_seconds),
        compliance,
        monitor,
        GatewayLimits(
            max_in_flight=settings.max_in_flight,
            default_deadline_seconds=settings.default_deadline_seconds,
            max_inputs=settings.max_inputs,
            max_input_chars=settings.max_input_chars,
        ),
        ServiceStatus("SERVING", time.time()),
    )
    health = HealthReporter(SERVICE_NAMES)
    server, port = create_server(settings, GatewayDeps(gateway, health))

    async def ready() -> None:
        await health.set_serving(True)

    async def close() -> None:
        await compliance.close()
        await monitor.close()
        await db.close()

    return RunningService(server, port, health, background=[ready], on_stop=[close])


if __name__ == "__main__":
    run_service(GatewaySettings(), start)
