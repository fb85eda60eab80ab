"""Run a service process: logging, tracing and metrics from its settings, then its server."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import grpc

from libs.config import ServiceSettings
from libs.logs import LogFiles, configure_logging
from libs.metrics import serve_metrics
from libs.process import exit_with_parent
from libs.rpc.health import HealthReporter
from libs.rpc.server import serve_until_signalled
from libs.telemetry import setup_tracing
from libs.tls import mesh_tls

log = logging.getLogger(__name__)


@dataclass
class RunningService:
    """What a service's startup returns: its bound server and what to do around it."""

    server: grpc.aio.Server
    port: int
    health: HealthReporter
    # Started once the server listens (e.g. loading and warming a model).
    background: Sequence[Callable[[], Awaitable[None]]] = field(default_factory=tuple)
    on_stop: Sequence[Callable[[], Awaitable[None]]] = field(default_factory=tuple)


def run_service(settings: ServiceSettings, start: Callable[[ServiceSettings], Awaitable[RunningService]]) -> None:
    """The body of every `python -m services.<name>`."""
    name = type(settings).service_name
    exit_with_parent()
    configure_logging(name, settings.app.log_level, LogFiles.of(settings.app))
    stop_tracing = setup_tracing(name, settings.telemetry)
    stop_metrics = serve_metrics(settings.host, settings.metrics_port,
                                 mesh_tls(settings.tls, name, settings.app.state_dir))
    try:
        asyncio.run(_serve(settings, start))
    finally:
        stop_metrics()
        stop_tracing()


async def _serve(settings: ServiceSettings, start: Callable[[ServiceSettings], Awaitable[RunningService]]) -> None:
    service = await start(settings)
    log.info("listening on %s:%d", settings.host, service.port)
    stop = asyncio.Event()
    failures: list[BaseException] = []

    async def supervised(job: Callable[[], Awaitable[None]]) -> None:
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a failed startup job stops the process: better than NOT_SERVING forever
            log.error("startup job failed: %s", type(error).__name__, exc_info=settings.app.is_development)
            failures.append(error)
            stop.set()

    tasks = [asyncio.create_task(supervised(job)) for job in service.background]
    try:
        await serve_until_signalled(service.server, service.health, settings.app.drain_seconds,
                                    service.on_stop, stop_event=stop)
    finally:
        for task in tasks:
            task.cancel()
    if failures:
        raise SystemExit(1)
