"""grpc.health.v1 Watch streams, one per watched service, feeding the core's HealthBook."""
from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from libs.config import MonitorSettings
from libs.rpc.tls import channel_credentials, server_name_options
from libs.tls import MeshTls
from services.monitor import mapper
from services.monitor.core.health import HealthBook

log = logging.getLogger(__name__)


class Backoff:
    """Doubling delays from `initial` up to `maximum`, each jittered to 50-100%."""

    def __init__(self, initial: float, maximum: float, jitter: Callable[[], float] = random.random) -> None:
        self._initial = initial
        self._maximum = max(maximum, initial)
        self._jitter = jitter
        self._next = initial

    def reset(self) -> None:
        self._next = self._initial

    def delay(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self._maximum)
        return delay * (0.5 + self._jitter() / 2)


class HealthWatcher:
    """Keeps a Watch stream on service "" open, recording every status; reconnects with backoff.

    With mesh TLS each attempt presents the monitor's current certificate and verifies that the server's
    names the watched service (its name is its identity)."""

    def __init__(self, name: str, address: str, book: HealthBook, backoff: Backoff,
                 tls: MeshTls | None = None) -> None:
        self._name = name
        self._address = address
        self._book = book
        self._backoff = backoff
        self._tls = tls

    async def run(self) -> None:
        while True:
            await self._watch()
            self._book.lost(self._name)
            await asyncio.sleep(self._backoff.delay())

    def _channel(self) -> grpc.aio.Channel:
        if self._tls is None:
            return grpc.aio.insecure_channel(self._address)
        credentials = channel_credentials(self._tls.source.poll())
        return grpc.aio.secure_channel(self._address, credentials, options=server_name_options(self._name))

    async def _watch(self) -> None:
        # A fresh channel per attempt: our backoff alone paces reconnects (a kept channel would add its
        # own, up to 2 minutes), a rotated certificate is picked up, and a stream that lasts days should
        # not be a span.
        async with self._channel() as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            try:
                async for response in stub.Watch(health_pb2.HealthCheckRequest(service="")):
                    self._book.record(self._name, mapper.service_status(response.status))
                    self._backoff.reset()
            except grpc.aio.AioRpcError as error:
                log.debug("health watch of %s ended: %s", self._name, error.code().name)


def build_watchers(settings: MonitorSettings, book: HealthBook, tls: MeshTls | None = None) -> list[HealthWatcher]:
    """A watcher for every configured service but the monitor itself (it records its own status)."""
    return [
        HealthWatcher(name, service.address, book,
                      Backoff(settings.watch_backoff_initial_seconds, settings.watch_backoff_max_seconds), tls)
        for name, service in settings.services.items()
        if name != settings.service_name
    ]


async def watch_all(watchers: Iterable[HealthWatcher]) -> None:
    """Run every watcher until cancelled."""
    async with asyncio.TaskGroup() as group:
        for watcher in watchers:
            group.create_task(watcher.run())
