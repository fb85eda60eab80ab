"""`python -m services.monitor`: wire settings to the health watchers, the core and the server."""
from __future__ import annotations

import asyncio
from functools import partial

import httpx

from libs.config import MonitorSettings
from libs.rpc.health import HealthReporter
from libs.service import RunningService, run_service
from libs.tls import mesh_tls
from libs.tls.https import ReloadingClientContext
from services.monitor.core.gpu import NvmlGpus
from services.monitor.core.monitor import build_core
from services.monitor.server import SERVICE_NAMES, MonitorDeps, create_server
from services.monitor.watcher import build_watchers, watch_all


async def start(settings: MonitorSettings) -> RunningService:
    health = HealthReporter(SERVICE_NAMES)
    tls = mesh_tls(settings.tls, settings.service_name, settings.app.state_dir)
    client = httpx.AsyncClient()  # webhooks: the usual public roots
    scrape_client = client
    if tls is not None:  # scrapes present the monitor's certificate (reloaded when its files change)
        context = ReloadingClientContext(tls)
        scrape_client = httpx.AsyncClient(verify=context.context, event_hooks={"request": [context.refresh]})
    gpus = await asyncio.to_thread(NvmlGpus.open)
    core = build_core(settings, health, client, gpus.read, scrape_client=scrape_client)
    server, port = create_server(settings, MonitorDeps(core, health))
    watchers = build_watchers(settings, core.book, tls)

    async def close() -> None:
        await client.aclose()
        if scrape_client is not client:
            await scrape_client.aclose()
        gpus.close()

    return RunningService(server, port, health, background=[core.run, partial(watch_all, watchers)], on_stop=[close])


if __name__ == "__main__":
    run_service(MonitorSettings(), start)
