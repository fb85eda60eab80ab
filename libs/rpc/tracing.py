"""Trace context on every call, and what it costs when nobody records spans.

With an exporter (OTLP endpoint set), OpenTelemetry's gRPC interceptors record a span per call. Without one
the provider samples nothing (`libs.telemetry`), yet OpenTelemetry's interceptors still build a span, its
attributes and a call filter per call (about a tenth of the gateway's CPU per cached request). Then the light
path here is used instead: the caller's W3C trace context (or a new trace id) becomes current for the call,
so trace ids still reach logs, audit rows and downstream calls, and nothing else is done.
"""
from __future__ import annotations

from collections.abc import Iterable

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from libs.rpc.interceptors import INFRASTRUCTURE_PREFIXES, StreamBehavior, UnaryBehavior, rewrap

_IDS = RandomIdGenerator()


def recording() -> bool:
    """Whether this process records spans (`libs.telemetry` installed a provider that samples)."""
    provider = trace.get_tracer_provider()
    return isinstance(provider, TracerProvider) and provider.sampler is not ALWAYS_OFF


def untraced(details: grpc.HandlerCallDetails) -> bool:
    """Probes and discovery: not requests, never traced (OpenTelemetry's interceptor filter takes the negation)."""
    return details.method.startswith(INFRASTRUCTURE_PREFIXES)


def call_context(metadata: Iterable[tuple[str, str | bytes]] | None) -> otel_context.Context:
    """The caller's trace context with a span of this call that records nothing: the caller's trace id (a new
    one when it sent none) and a span id of its own, as a sampled-out span would have."""
    parent = propagate.extract({key: value for key, value in metadata or () if isinstance(value, str)})
    caller = trace.get_current_span(parent).get_span_context()
    trace_id = caller.trace_id if caller.is_valid else _IDS.generate_trace_id()
    flags = caller.trace_flags if caller.is_valid else trace.TraceFlags(trace.TraceFlags.DEFAULT)
    span = trace.NonRecordingSpan(trace.SpanContext(trace_id, _IDS.generate_span_id(), is_remote=False,
                                                    trace_flags=flags, trace_state=caller.trace_state))
    return trace.set_span_in_context(span, parent)


def trace_metadata() -> tuple[tuple[str, str], ...]:
    """The current trace context as W3C headers for a downstream call."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return tuple(carrier.items())


class TraceContextInterceptor(grpc.aio.ServerInterceptor):
    """The light path: the call's trace context made current while its handler runs."""

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None or untraced(handler_call_details):
            return handler
        metadata = handler_call_details.invocation_metadata

        def wrap_unary(behavior: UnaryBehavior) -> UnaryBehavior:
            async def traced(request, context):
                token = otel_context.attach(call_context(metadata))
                try:
                    return await behavior(request, context)
                finally:
                    otel_context.detach(token)

            return traced

        def wrap_stream(behavior: StreamBehavior) -> StreamBehavior:
            async def traced(request, context):
                # Not detached: each call runs in a task of its own, whose context ends with it (a token
                # reset from a generator closed elsewhere would belong to another context).
                otel_context.attach(call_context(metadata))
                async for item in behavior(request, context):
                    yield item

            return traced

        return rewrap(handler, wrap_unary, wrap_stream)
