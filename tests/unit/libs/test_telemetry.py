"""Tracing records (and exports) spans only when an OTLP endpoint is set; trace ids exist either way."""
from __future__ import annotations

from libs.config import TelemetrySettings
from libs.telemetry import tracer_provider
from tests.support.otlp import running_receiver


def _record_one_span(settings: TelemetrySettings) -> tuple[bool, int]:
    provider = tracer_provider("gateway", settings)
    try:
        with provider.get_tracer("t").start_as_current_span("call") as span:
            return span.is_recording(), span.get_span_context().trace_id
    finally:
        provider.shutdown()  # flushes what was recorded


def test_without_an_endpoint_spans_are_not_recorded_but_have_ids():
    recording, trace_id = _record_one_span(TelemetrySettings(exporter_otlp_endpoint=None,
                                                             exporter_otlp_traces_endpoint=None))
    assert not recording and trace_id != 0


def test_with_an_endpoint_spans_are_exported_as_the_service():
    with running_receiver() as (receiver, port):
        recording, trace_id = _record_one_span(TelemetrySettings(exporter_otlp_endpoint=f"http://127.0.0.1:{port}"))
        assert recording
        assert [(s.name, s.service) for s in receiver.in_trace(format(trace_id, "032x"))] == [("call", "medai-gateway")]
