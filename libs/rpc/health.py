"""grpc.health.v1 for a service: one status for the server and each of its gRPC services."""
from __future__ import annotations

from collections.abc import Sequence

from grpc_health.v1 import health, health_pb2

from libs.metrics import SERVICE_SERVING
from libs.rpc.drain import Drain

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class _NotServingUntilReady(health.aio.HealthServicer):
    """The standard servicer reports "" SERVING from the start; a service must earn it (e.g. warm model)."""

    def __init__(self, names: Sequence[str]) -> None:
        super().__init__()
        self._server_status = dict.fromkeys(names, NOT_SERVING)


class HealthReporter:
    """Implements `libs.lifecycle.Readiness` on top of the standard health servicer; also holds the
    server's drain (its in-flight calls), the other half of a service's lifecycle."""

    def __init__(self, service_names: Sequence[str]) -> None:
        self._names = ["", *service_names]
        self.servicer = _NotServingUntilReady(self._names)
        self.drain = Drain()

    async def set_serving(self, serving: bool) -> None:
        status = SERVING if serving else NOT_SERVING
        for name in self._names:
            await self.servicer.set(name, status)
        SERVICE_SERVING.set(1 if serving else 0)

    async def shutdown(self) -> None:
        """NOT_SERVING for everything, and no further changes (the server is draining)."""
        await self.servicer.enter_graceful_shutdown()
        SERVICE_SERVING.set(0)
