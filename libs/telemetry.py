"""OpenTelemetry tracing from the standard OTEL_* settings.

A tracer provider is always installed (trace ids reach logs and propagate downstream in
W3C traceparent headers); spans leave the process only when an OTLP endpoint is set. Without one,
spans are not recorded at all (ALWAYS_OFF): ids still flow, the per-call cost of building spans
nobody reads is gone.
"""
from __future__ import annotations

from collections.abc import Callable

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from libs.config import TelemetrySettings


def tracer_provider(service: str, settings: TelemetrySettings) -> TracerProvider:
    """The provider for this service: exporting over OTLP/gRPC when an endpoint is set, else not recording."""
    resource = Resource.create({"service.name": settings.service_name or f"medai-{service}"})
    provider = TracerProvider(resource=resource, sampler=None if settings.exporting else ALWAYS_OFF)
    if settings.exporting:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        endpoint = settings.exporter_otlp_traces_endpoint or settings.exporter_otlp_endpoint
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return provider


def setup_tracing(service: str, settings: TelemetrySettings) -> Callable[[], None]:
    """Install the global tracer provider for this service; returns a flush-and-stop function."""
    provider = tracer_provider(service, settings)
    trace.set_tracer_provider(provider)
    return provider.shutdown
