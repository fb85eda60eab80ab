"""gRPC over mutual TLS: server credentials that pick up a rotated certificate on the next handshake, and
client channels that move to a new connection when their certificate files change.

Servers: `grpc.dynamic_ssl_server_credentials` asks its fetcher on every new handshake; the fetcher
answers a new configuration when the source's files changed (None otherwise), so new connections use the
new certificate and running ones are not touched. Client certificates are required and verified against
the CA bundle.

Clients: a channel's credentials are fixed when it is made, so `ReloadingChannel` makes a new channel
when the files change (checked before each call, at most every TLS_RELOAD_SECONDS) and lets the old one
finish the calls it carries before closing it. Every channel verifies the server's name: the identity
the caller expects (`grpc.ssl_target_name_override`), whatever address it dials.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import grpc

from libs.tls import MeshTls
from libs.tls.material import Material

log = logging.getLogger(__name__)

# Seconds a replaced channel keeps serving the calls it carries (longer than any call's deadline).
RETIRED_CHANNEL_GRACE_SECONDS = 660.0


def _server_configuration(material: Material) -> grpc.ServerCertificateConfiguration:
    return grpc.ssl_server_certificate_configuration([(material.key, material.cert)], root_certificates=material.ca)


def server_credentials(mesh: MeshTls) -> grpc.ServerCredentials:
    """Credentials requiring a client certificate of the mesh CA, re-reading the files on handshakes."""
    initial = mesh.source.current
    served = {"generation": initial.generation}

    def fetch() -> grpc.ServerCertificateConfiguration | None:
        material = mesh.source.poll()
        if material.generation == served["generation"]:
            return None
        served["generation"] = material.generation
        return _server_configuration(material)

    return grpc.dynamic_ssl_server_credentials(_server_configuration(initial), fetch,
                                               require_client_authentication=True)


def channel_credentials(material: Material) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(material.ca, material.key, material.cert)


def server_name_options(server_name: str) -> list[tuple[str, str]]:
    """Verify `server_name` (a DNS SAN of the server's certificate) whatever address is dialled."""
    return [("grpc.ssl_target_name_override", server_name)]


class _DeferredMultiCallable:
    """A stub's method: resolved on the channel current at call time."""

    def __init__(self, owner: ReloadingChannel, kind: str, args: tuple, kwargs: dict) -> None:
        self._owner, self._kind, self._args, self._kwargs = owner, kind, args, kwargs
        self._generation = -1
        self._callable: Any = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        channel, generation = self._owner.current()
        if generation != self._generation:
            self._callable = getattr(channel, self._kind)(*self._args, **self._kwargs)
            self._generation = generation
        return self._callable(*args, **kwargs)


class ReloadingChannel(grpc.aio.Channel):
    """A grpc.aio.Channel whose underlying secure channel is replaced when the certificate files change."""

    def __init__(self, mesh: MeshTls, make: Callable[[grpc.ChannelCredentials], grpc.aio.Channel]) -> None:
        self._mesh = mesh
        self._make = make
        self._material = mesh.source.current
        self._channel = make(channel_credentials(self._material))
        self._generation = 0
        self._retiring: dict[asyncio.Task, grpc.aio.Channel] = {}

    def current(self) -> tuple[grpc.aio.Channel, int]:
        material = self._mesh.source.poll()
        if material.generation != self._material.generation:
            self._replace(material)
        return self._channel, self._generation

    def _replace(self, material: Material) -> None:
        old, self._material = self._channel, material
        self._channel = self._make(channel_credentials(material))
        self._generation += 1
        log.info("client certificate of %s changed: new calls use a new connection", self._mesh.identity)
        with contextlib.suppress(RuntimeError):  # no running loop: the old channel is simply dropped
            task = asyncio.get_running_loop().create_task(old.close(RETIRED_CHANNEL_GRACE_SECONDS))
            self._retiring[task] = old
            task.add_done_callback(lambda done: self._retiring.pop(done, None))

    def unary_unary(self, *args: Any, **kwargs: Any) -> Any:
        return _DeferredMultiCallable(self, "unary_unary", args, kwargs)

    def unary_stream(self, *args: Any, **kwargs: Any) -> Any:
        return _DeferredMultiCallable(self, "unary_stream", args, kwargs)

    def stream_unary(self, *args: Any, **kwargs: Any) -> Any:
        return _DeferredMultiCallable(self, "stream_unary", args, kwargs)

    def stream_stream(self, *args: Any, **kwargs: Any) -> Any:
        return _DeferredMultiCallable(self, "stream_stream", args, kwargs)

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self.current()[0].get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await self.current()[0].wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        await self.current()[0].channel_ready()

    async def close(self, grace: float | None = None) -> None:
        retiring, self._retiring = dict(self._retiring), {}
        for task, old in retiring.items():
            task.cancel()
            await old.close(None)
        await self._channel.close(grace)

    async def __aenter__(self) -> ReloadingChannel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close(None)
