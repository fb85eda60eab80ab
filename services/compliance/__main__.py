"""`python -m services.compliance`: wire settings to the worker clients, the core and the server."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from libs.config import ComplianceSettings
from libs.rpc.health import HealthReporter
from libs.service import RunningService, run_service
from libs.tls import mesh_tls
from services.compliance.core.service import ComplianceCore, deidentifier_builder
from services.compliance.server import SERVICE_NAMES, ComplianceDeps, create_server
from services.compliance.workers import GrpcWorkers


async def start(settings: ComplianceSettings) -> RunningService:
    executor = ThreadPoolExecutor(settings.deidentify_threads, thread_name_prefix="deidentify")
    workers = GrpcWorkers(reconnect_backoff_seconds=settings.registry_refresh_seconds,
                          tls=mesh_tls(settings.tls, settings.service_name, settings.app.state_dir))
    core = ComplianceCore.from_settings(settings, workers, executor)
    health = HealthReporter(SERVICE_NAMES)
    server, port = create_server(settings, ComplianceDeps(core, health))

    async def warm() -> None:
        await core.start(deidentifier_builder(settings), health)

    async def close() -> None:
        await workers.close()
        await core.close()
        executor.shutdown(wait=False, cancel_futures=True)

    return RunningService(server, port, health, background=[warm, core.registry.run, *core.background()],
                          on_stop=[close])


if __name__ == "__main__":
    run_service(ComplianceSettings(), start)
