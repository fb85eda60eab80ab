"""Server bootstrap shared by every service: mutual TLS and caller checks, interceptors, health, reflection,
graceful stop."""
from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.instrumentation.grpc import aio_server_interceptor

from libs.config import ServiceSettings
from libs.rpc.channels import MAX_MESSAGE_BYTES
from libs.rpc.health import HealthReporter
from libs.rpc.interceptors import CallContextInterceptor, DrainInterceptor, ErrorInterceptor, ErrorPresenter
from libs.rpc.peers import CallerPolicy, PeerAuthorizationInterceptor
from libs.rpc.tls import server_credentials
from libs.rpc.tracing import TraceContextInterceptor, recording, untraced
from libs.tls import mesh_tls

log = logging.getLogger(__name__)

# Seconds interrupted calls get to send their last message and status before the server stops.
INTERRUPT_GRACE_SECONDS = 2.0
STOP_GRACE_SECONDS = 0.1
# Headers (gRPC metadata) a call may carry; Envoy refuses larger ones (431) before they get here.
MAX_METADATA_BYTES = 32 * 1024


def tracing_interceptor() -> grpc.aio.ServerInterceptor:
    """OpenTelemetry's span per call when spans are recorded, else only the trace context (`libs.rpc.tracing`).
    Probes and discovery are not traced (long-lived, not requests; and their stream handlers are not async
    generators, which OpenTelemetry's interceptor assumes)."""
    if recording():
        return aio_server_interceptor(filter_=lambda details: not untraced(details))
    return TraceContextInterceptor()


def new_server(
    settings: ServiceSettings,
    health: HealthReporter,
    service_names: Sequence[str],
    register: Callable[[grpc.aio.Server], None],
    error_presenters: Mapping[str, ErrorPresenter] | None = None,
) -> tuple[grpc.aio.Server, int]:
    """A server with the mesh's interceptors, health and (in development) reflection, bound
    to settings.host:settings.port (port 0 picks a free one); returns it and the bound port.
    Mutual TLS unless TLS_ENABLED=false: client certificates of the mesh CA required, callers admitted by
    their certificate's identity (`libs.rpc.peers`).

    error_presenters: public methods (by full method name) that present failures beyond the status:
    streams that end with an in-band error message, APIs with their own error shape (`ErrorInterceptor`)."""
    tls = mesh_tls(settings.tls, type(settings).service_name, settings.app.state_dir)
    interceptors: list[grpc.aio.ServerInterceptor] = [
        tracing_interceptor(), CallContextInterceptor(), ErrorInterceptor(error_presenters)]
    if tls is not None:
        interceptors.append(PeerAuthorizationInterceptor(CallerPolicy.for_service(tls)))
    interceptors.append(DrainInterceptor(health.drain))
    server = grpc.aio.server(
        interceptors=interceptors,
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_metadata_size", MAX_METADATA_BYTES),
            ("grpc.so_reuseport", 0),
        ],
    )
    register(server)
    health_pb2_grpc.add_HealthServicer_to_server(health.servicer, server)
    if settings.app.is_development:
        health_name = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
        reflection.enable_server_reflection([*service_names, health_name, reflection.SERVICE_NAME], server)
    address = f"{settings.host}:{settings.port}"
    if tls is None:
        log.warning("mesh TLS is off (TLS_ENABLED=false): plaintext gRPC on %s, any caller admitted", address)
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, server_credentials(tls))
    return server, port


async def serve_until_signalled(
    server: grpc.aio.Server,
    health: HealthReporter,
    drain_seconds: float,
    on_stop: Sequence[Callable[[], Awaitable[None]]] = (),
    stop_event: asyncio.Event | None = None,
) -> None:
    """Run until SIGTERM/SIGINT (or stop_event), then drain: NOT_SERVING, refuse new calls, let the
    running ones finish for up to `drain_seconds`, end the rest with UNAVAILABLE, stop."""
    stop = stop_event or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await server.start()
    await stop.wait()
    await drain_and_stop(server, health, drain_seconds)
    for callback in on_stop:
        await callback()
    log.info("stopped")


async def drain_and_stop(server: grpc.aio.Server, health: HealthReporter, drain_seconds: float) -> None:
    """The drain sequence itself (see `serve_until_signalled`)."""
    log.info("draining: %d calls in flight, waiting up to %.1f s", health.drain.in_flight, drain_seconds)
    await health.shutdown()
    left = await health.drain.drain(drain_seconds)
    if left:
        log.warning("drain deadline reached: ending %d calls with UNAVAILABLE", left)
        health.drain.interrupt()
        await health.drain.wait_idle(INTERRUPT_GRACE_SECONDS)
    # What is left are health watches and reflection: nothing to wait for.
    await server.stop(STOP_GRACE_SECONDS)
