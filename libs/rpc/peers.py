"""Who may call this server, checked from the caller's certificate (its SPIFFE ID), never from its address.

The TLS handshake already refused callers without a certificate of the mesh CA; this interceptor admits
only the identities the table allows for the method called: the service's callers (TLS_ALLOWED_CALLERS),
the health callers for grpc.health.v1 (plus the service itself: a container's probe runs with its own
identity). Any other caller gets PERMISSION_DENIED (UNAUTHENTICATED when its certificate names no mesh
identity) and one log line naming the method and the caller's identity, never request content.
"""
from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from prometheus_client import Counter

from libs.errors import PermissionDenied, Unauthenticated
from libs.rpc.status import status_for
from libs.tls import MeshTls
from libs.tls.identity import identity_of

log = logging.getLogger(__name__)

REFUSED_CALLERS = Counter("medai_mtls_refused_calls_total",
                          "Calls refused because the caller's certificate identity may not call the method",
                          ["method", "caller"])
UNKNOWN_CALLER = "unknown"
HEALTH_PREFIX = "/grpc.health.v1."
REFLECTION_PREFIX = "/grpc.reflection."
NOT_ALLOWED = "this caller may not call this service"
NO_IDENTITY = "the client certificate names no identity of this mesh"


@dataclass(frozen=True)
class CallerPolicy:
    """Method prefix -> identities admitted; the longest matching prefix decides ("" is the default)."""

    rules: dict[str, frozenset[str]]
    trust_domain: str

    @classmethod
    def for_service(cls, mesh: MeshTls) -> CallerPolicy:
        settings = mesh.settings
        callers = settings.callers_of(mesh.identity)
        health = frozenset(settings.health_callers) | {mesh.identity}
        return cls({"": callers, HEALTH_PREFIX: health, REFLECTION_PREFIX: callers | health}, settings.trust_domain)

    def admitted(self, method: str) -> frozenset[str]:
        prefix = max((prefix for prefix in self.rules if method.startswith(prefix)), key=len)
        return self.rules[prefix]


def caller_identity(context: grpc.aio.ServicerContext, trust_domain: str) -> str | None:
    """The mesh identity in the peer's certificate (its SPIFFE ID), else None."""
    sans = context.peer_identities() or ()
    return identity_of((san.decode(errors="replace") for san in sans), trust_domain)


class PeerAuthorizationInterceptor(grpc.aio.ServerInterceptor):
    """Refuses callers the policy does not admit. Inside the ErrorInterceptor: handlers it wraps raise the
    domain errors it maps; the others (health's Watch, reflection) are aborted with the same mapping."""

    def __init__(self, policy: CallerPolicy) -> None:
        self._policy = policy

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        admitted = self._policy.admitted(method)
        trust_domain = self._policy.trust_domain

        def check(context: grpc.aio.ServicerContext) -> None:
            identity = caller_identity(context, trust_domain)
            if identity in admitted:
                return
            REFUSED_CALLERS.labels(method, identity or UNKNOWN_CALLER).inc()
            log.warning("refused a call to %s from %s (admitted: %s)", method,
                        identity or "a certificate without a mesh identity", ", ".join(sorted(admitted)))
            raise PermissionDenied(NOT_ALLOWED) if identity else Unauthenticated(NO_IDENTITY)

        return _guarded(handler, check)


def _guarded(handler: grpc.RpcMethodHandler, check: Callable[[grpc.aio.ServicerContext], None]) -> Any:
    """A copy of handler whose behaviour runs `check` first."""
    if handler.unary_unary:
        behavior = handler.unary_unary

        async def unary(request, context):
            check(context)
            return await behavior(request, context)

        return grpc.unary_unary_rpc_method_handler(unary, handler.request_deserializer,
                                                   handler.response_serializer)
    if handler.unary_stream and inspect.isasyncgenfunction(handler.unary_stream):
        behavior = handler.unary_stream

        async def stream(request, context):
            check(context)
            async for item in behavior(request, context):
                yield item

        return grpc.unary_stream_rpc_method_handler(stream, handler.request_deserializer,
                                                    handler.response_serializer)
    for kind, factory in _ABORTING_FACTORIES.items():
        behavior = getattr(handler, kind)
        if behavior:
            return factory(_aborting(behavior, check), handler.request_deserializer, handler.response_serializer)
    return handler


def _aborting(behavior: Callable, check: Callable[[grpc.aio.ServicerContext], None]) -> Callable:
    async def guarded(request_or_iterator, context):
        try:
            check(context)
        except (PermissionDenied, Unauthenticated) as error:
            await context.abort(*status_for(error))
        return await behavior(request_or_iterator, context)

    return guarded


_ABORTING_FACTORIES = {
    "unary_stream": grpc.unary_stream_rpc_method_handler,
    "stream_unary": grpc.stream_unary_rpc_method_handler,
    "stream_stream": grpc.stream_stream_rpc_method_handler,
}
