"""OpenTelemetry tracing from the standard OTEL_* settings.

A tracer provider is always installed (trace ids reach logs and propagate downstream in
W3C traceparent headers); spans leave the process only when an OTLP endpoint is set.
"""
from __future__ import annotations

from collections.abc import Callable

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from libs.config import TelemetrySettings


def setup_tracing(service: str, settings: TelemetrySettings) -> Callable[[], None]:
    """Install the global tracer provider for this service; returns a flush-and-stop function."""
    provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name or f"medai-{service}"}))
    if settings.exporting:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        endpoint = settings.exporter_otlp_traces_endpoint or settings.exporter_otlp_endpoint
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    return provider.shutdown
