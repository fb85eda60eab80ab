"""An in-test OTLP/gRPC trace collector (Jaeger cannot run here): keeps what every exporter sends."""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


@dataclass(frozen=True)
class ReceivedSpan:
    trace_id: str
    name: str
    service: str
    attribute_values: tuple[str, ...]


@dataclass
class SpanReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    """Keeps (trace id, span name, service.name, attribute values) of every span it receives."""

    received: list[ReceivedSpan] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def spans(self) -> list[tuple[str, str]]:
        with self._lock:
            return [(span.trace_id, span.name) for span in self.received]

    def in_trace(self, trace_id: str) -> list[ReceivedSpan]:
        with self._lock:
            return [span for span in self.received if span.trace_id == trace_id]

    def Export(self, request, context):
        with self._lock:
            for resource_spans in request.resource_spans:
                service = next((a.value.string_value for a in resource_spans.resource.attributes
                                if a.key == "service.name"), "")
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        values = tuple(str(a.value).strip() for a in span.attributes)
                        self.received.append(ReceivedSpan(span.trace_id.hex(), span.name, service, values))
        return trace_service_pb2.ExportTraceServiceResponse()


@contextlib.contextmanager
def running_receiver() -> Iterator[tuple[SpanReceiver, int]]:
    """The collector on 127.0.0.1 (a free port); stopped on exit."""
    receiver = SpanReceiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield receiver, port
    finally:
        server.stop(None).wait()
