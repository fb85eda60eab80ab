"""Client channels: mutual TLS, tracing, request-id propagation, retry policy for idempotent calls."""
from __future__ import annotations

import json
from collections.abc import Sequence

import grpc
from opentelemetry.instrumentation.grpc import aio_client_interceptors

from libs.rpc.context import outgoing_metadata
from libs.rpc.tls import ReloadingChannel, server_name_options
from libs.rpc.tracing import recording, trace_metadata
from libs.tls import MeshTls

MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def retry_service_config(service_names: Sequence[str], load_balancing: str | None = None) -> str:
    """gRPC service config retrying idempotent services once more on UNAVAILABLE, with backoff;
    load_balancing (e.g. "round_robin") spreads calls over every address the target resolves to."""
    config: dict = {
        "methodConfig": [
            {
                "name": [{"service": name} for name in service_names],
                "retryPolicy": {
                    "maxAttempts": 2,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ] if service_names else []
    }
    if load_balancing:
        config["loadBalancingConfig"] = [{load_balancing: {}}]
    return json.dumps(config)


class _RequestIdInterceptor(grpc.aio.UnaryUnaryClientInterceptor, grpc.aio.UnaryStreamClientInterceptor):
    """Adds x-request-id of the call being served to every outgoing call, and its trace context when no
    OpenTelemetry client interceptor does (spans not recorded: `libs.rpc.tracing`)."""

    def __init__(self, *, with_trace_context: bool) -> None:
        self._with_trace_context = with_trace_context

    def _with_request_id(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        extra = outgoing_metadata() + (trace_metadata() if self._with_trace_context else ())
        if not extra:
            return details
        metadata = grpc.aio.Metadata(*(details.metadata or ()), *extra)
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )

    async def intercept_unary_unary(self, continuation, client_call_details, request):
        return await continuation(self._with_request_id(client_call_details), request)

    async def intercept_unary_stream(self, continuation, client_call_details, request):
        return await continuation(self._with_request_id(client_call_details), request)


def open_channel(address: str, *, idempotent_services: Sequence[str] = (),
                 max_reconnect_backoff_seconds: float | None = None,
                 load_balancing: str | None = None, tls: MeshTls | None = None,
                 server_name: str | None = None) -> grpc.aio.Channel:
    """A channel to another service of the mesh: mutual TLS with this process's certificate when `tls` is
    given (verifying that the server's certificate names `server_name`, whatever address is dialled; a new
    connection once the certificate files change), plaintext otherwise (TLS_ENABLED=false).

    max_reconnect_backoff_seconds caps gRPC's reconnect backoff (default up to 120 s), so a peer
    that was down for long is found again soon after it comes back. load_balancing "round_robin"
    balances over every address of the target (several replicas: "ipv4:10.0.0.1:50054,10.0.0.2:50054",
    or a DNS name with several records), and a retried call goes to the next replica.
    """
    options: list[tuple[str, int | str]] = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.enable_retries", 1),
    ]
    if idempotent_services or load_balancing:
        options.append(("grpc.service_config", retry_service_config(idempotent_services, load_balancing)))
    if max_reconnect_backoff_seconds is not None:
        options.append(("grpc.max_reconnect_backoff_ms", int(max_reconnect_backoff_seconds * 1000)))
    traced = recording()
    interceptors = [*(aio_client_interceptors() if traced else ()),
                    _RequestIdInterceptor(with_trace_context=not traced)]
    if tls is None:
        return grpc.aio.insecure_channel(address, options=options, interceptors=interceptors)
    if not server_name:
        raise ValueError("a TLS channel needs the server name to verify")
    secure_options = [*options, *server_name_options(server_name)]
    return ReloadingChannel(tls, lambda credentials: grpc.aio.secure_channel(
        address, credentials, options=secure_options, interceptors=interceptors))
