"""Server bootstrap shared by every service: interceptors, health, reflection, graceful stop."""
from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.instrumentation.grpc import aio_server_interceptor
from opentelemetry.instrumentation.grpc.filters import any_of, negate, service_prefix

from libs.config import ServiceSettings
from libs.rpc.channels import MAX_MESSAGE_BYTES
from libs.rpc.health import HealthReporter
from libs.rpc.interceptors import CallContextInterceptor, ErrorInterceptor

log = logging.getLogger(__name__)

# Not traced: long-lived probes, not requests (and their handlers are not async generators,
# which the tracing interceptor assumes for server streams).
_UNTRACED = negate(any_of(service_prefix("grpc.health.v1."), service_prefix("grpc.reflection.")))


def new_server(
    settings: ServiceSettings,
    health: HealthReporter,
    service_names: Sequence[str],
    register: Callable[[grpc.aio.Server], None],
) -> tuple[grpc.aio.Server, int]:
    """A server with the mesh's interceptors, health and (in development) reflection, bound
    to settings.host:settings.port (port 0 picks a free one); returns it and the bound port."""
    server = grpc.aio.server(
        interceptors=[aio_server_interceptor(filter_=_UNTRACED), CallContextInterceptor(), ErrorInterceptor()],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ],
    )
    register(server)
    health_pb2_grpc.add_HealthServicer_to_server(health.servicer, server)
    if settings.app.is_development:
        health_name = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
        reflection.enable_server_reflection([*service_names, health_name, reflection.SERVICE_NAME], server)
    port = server.add_insecure_port(f"{settings.host}:{settings.port}")
    return server, port


async def serve_until_signalled(
    server: grpc.aio.Server,
    health: HealthReporter,
    grace_seconds: float,
    on_stop: Sequence[Callable[[], Awaitable[None]]] = (),
    stop_event: asyncio.Event | None = None,
) -> None:
    """Run until SIGTERM/SIGINT (or stop_event): NOT_SERVING, drain in-flight calls, stop."""
    stop = stop_event or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await server.start()
    await stop.wait()
    log.info("stopping: draining calls for up to %.1fs", grace_seconds)
    await health.shutdown()
    await server.stop(grace_seconds)
    for callback in on_stop:
        await callback()
    log.info("stopped")
