"""The Envoy edge in front of a recording `medai.gateway.v1.Gateway`: JSON and gRPC on one port.

One Envoy (CORS and tracing on) and one in-test gateway + OTLP receiver serve the whole module.
"""
from __future__ import annotations

import json
import queue
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
import httpx
import pytest
from google.api import httpbody_pb2
from google.protobuf import json_format, struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from libs.config import EnvoySettings, TelemetrySettings
from medai.common.v1 import inference_pb2
from medai.gateway.v1 import gateway_pb2_grpc
from medai.monitor.v1 import monitor_pb2
from tests.support.edge import RunningEdge, running_edge
from tests.support.otlp import SpanReceiver
from tests.support.ports import free_ports

ALLOWED_ORIGIN = "https://ehr.example.org"
PHI_NAME, PHI_SSN = "Johnathan Q. Smithers", "078-05-1120"
PHI_TEXT = f"Patient {PHI_NAME}, SSN {PHI_SSN}"
STREAM_EVENTS = 3
CUT_MODEL = "m-cut"
ACK_TIMEOUT_SECONDS = 5.0
WAIT_SECONDS = 5.0
# model_id -> the status the gateway answers with, and the HTTP status a JSON caller must see.
ERROR_MODELS: dict[str, tuple[grpc.StatusCode, int]] = {
    "missing": (grpc.StatusCode.NOT_FOUND, 404),
    "bad": (grpc.StatusCode.INVALID_ARGUMENT, 400),
    "nokey": (grpc.StatusCode.UNAUTHENTICATED, 401),
    "forbidden": (grpc.StatusCode.PERMISSION_DENIED, 403),
    "down": (grpc.StatusCode.UNAVAILABLE, 503),
    "busy": (grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
}
BAD_BODY_MESSAGE = {"code": 3, "message": "request body is not valid JSON for this route"}


@dataclass
class Call:
    method: str
    request: Any
    metadata: dict[str, str]


@dataclass
class RecordingGateway(gateway_pb2_grpc.GatewayServicer):
    """Answers like the gateway would and records what reached it (requests and metadata)."""

    calls: list[Call] = field(default_factory=list)
    # The test acknowledges each stream event it has received; the next is produced only then.
    acks: queue.Queue[int] = field(default_factory=queue.Queue)

    def _record(self, method: str, request: Any, context: grpc.ServicerContext) -> None:
        self.calls.append(Call(method, request, {key: str(value) for key, value in context.invocation_metadata()}))

    def calls_to(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    def GetHealth(self, request, context):
        self._record("GetHealth", request, context)
        serving = monitor_pb2.ServiceHealth(status="SERVING")
        return monitor_pb2.MeshHealth(status="SERVING", services={"gateway": serving})

    def GetMetrics(self, request, context):
        self._record("GetMetrics", request, context)
        return httpbody_pb2.HttpBody(content_type="text/plain; version=0.0.4; charset=utf-8", data=b"medai_up 1\n")

    def ListAuditRecords(self, request, context):
        self._record("ListAuditRecords", request, context)
        return inference_pb2.ListAuditRecordsResponse()

    def Predict(self, request, context):
        self._record("Predict", request, context)
        if request.model_id in ERROR_MODELS:
            code, _ = ERROR_MODELS[request.model_id]
            context.abort(code, f"gateway says {code.name}")
        return inference_pb2.PredictResponse(
            request_id="req-from-gateway", model_id=request.model_id, outputs=struct_pb2.Value(string_value="ok"),
            metadata=inference_pb2.PredictMetadata(tokens_generated=3, model_version="v1"),
        )

    def PredictStream(self, request, context):
        self._record("PredictStream", request, context)
        if request.model_id == CUT_MODEL:  # as the gateway ends a stream its worker died under
            yield inference_pb2.PredictStreamChunk(model_id=request.model_id, index=0, text="tok0")
            error = inference_pb2.StreamError(code="UNAVAILABLE", message="model worker unavailable",
                                              request_id="req-cut")
            yield inference_pb2.PredictStreamChunk(request_id="req-cut", error=error)
            context.abort(grpc.StatusCode.UNAVAILABLE, "model worker unavailable")
        for index in range(STREAM_EVENTS):
            last = index == STREAM_EVENTS - 1
            yield inference_pb2.PredictStreamChunk(
                model_id=request.model_id, index=index, text=f"tok{index}", finish_reason="stop" if last else None
            )
            if not last and not self._acknowledged(index):
                context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "event was not delivered while streaming")

    def delivered(self, index: int) -> None:
        """Called by the test for each event it received (the last one needs no acknowledgement)."""
        if index < STREAM_EVENTS - 1:
            self.acks.put(index)

    def _acknowledged(self, index: int) -> bool:
        try:
            return self.acks.get(timeout=ACK_TIMEOUT_SECONDS) == index
        except queue.Empty:
            return False


@dataclass(frozen=True)
class Mesh:
    edge: RunningEdge
    gateway: RecordingGateway
    receiver: SpanReceiver
    http: httpx.Client
    channel: grpc.Channel


@pytest.fixture(scope="module")
def mesh(tmp_path_factory) -> Iterator[Mesh]:
    gateway, receiver = RecordingGateway(), SpanReceiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    gateway_pb2_grpc.add_GatewayServicer_to_server(gateway, server)
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)
    upstream_port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    workdir = tmp_path_factory.mktemp("envoy-edge")
    port, admin_port = free_ports(2)
    settings = EnvoySettings(
        host="127.0.0.1", port=port, admin_port=admin_port, gateway_address=f"127.0.0.1:{upstream_port}",
        cors_origins=[ALLOWED_ORIGIN], max_request_bytes=1_048_576, route_timeout_seconds=30,
        local_rate_limit_per_second=10_000, access_log_path=str(workdir / "access.log"),
        telemetry=TelemetrySettings(exporter_otlp_endpoint=f"http://127.0.0.1:{upstream_port}",
                                    exporter_otlp_traces_endpoint=None, sdk_disabled=False, service_name=None),
    )
    try:
        with running_edge(settings, workdir, adjust=_flush_spans_quickly) as edge, \
                httpx.Client(base_url=edge.base_url, timeout=10) as http, \
                grpc.insecure_channel(edge.grpc_target) as channel:
            yield Mesh(edge, gateway, receiver, http, channel)
    finally:
        server.stop(None).wait()


def _flush_spans_quickly(config: dict[str, Any]) -> None:
    config["layered_runtime"] = {"layers": [
        {"name": "test", "static_layer": {"tracing.opentelemetry.flush_interval_ms": 100}},
    ]}


def _wait_for(condition: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _assert_no_phi(text: str) -> None:
    for fragment in (PHI_NAME, PHI_SSN, "Johnathan", "Smithers", "078-05"):
        assert fragment not in text


def test_json_predict_reaches_gateway_transcoded(mesh: Mesh) -> None:
    body = {"inputs": ["first note", "second note"], "parameters": {"max_new_tokens": 5, "temperature": 0.5},
            "user_id": "clinician-7", "session_id": "s-1"}

    answer = mesh.http.post("/models/m1/predict", json=body)

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    result = answer.json()
    assert result["request_id"] == "req-from-gateway"
    assert result["model_id"] == "m1"
    assert result["outputs"] == "ok"
    assert result["processing_time"] == 0  # primitives are printed even when zero
    assert result["metadata"]["tokens_generated"] == 3
    request = mesh.gateway.calls_to("Predict")[-1].request
    assert request.model_id == "m1"
    assert json_format.MessageToDict(request.inputs) == ["first note", "second note"]
    assert request.parameters.max_new_tokens == 5
    assert request.user_id == "clinician-7"
    assert request.session_id == "s-1"


def test_string_input_arrives_as_a_string_value(mesh: Mesh) -> None:
    answer = mesh.http.post("/models/m1/predict", json={"inputs": "one note"})

    assert answer.status_code == 200
    assert mesh.gateway.calls_to("Predict")[-1].request.inputs.string_value == "one note"


def test_stream_answers_server_sent_events_as_they_are_produced(mesh: Mesh) -> None:
    events = []
    with mesh.http.stream("POST", "/models/m1/predict:stream", json={"inputs": "hello"}) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        for line in answer.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line.removeprefix("data:")))
                # The gateway produces the next event only after this one has reached us.
                mesh.gateway.delivered(events[-1]["index"])

    assert [event["index"] for event in events] == list(range(STREAM_EVENTS))
    assert "".join(event["text"] for event in events) == "tok0tok1tok2"
    assert events[-1]["finish_reason"] == "stop"


def test_native_grpc_on_the_same_port(mesh: Mesh) -> None:
    stub = gateway_pb2_grpc.GatewayStub(mesh.channel)

    reply = stub.Predict(inference_pb2.PredictRequest(model_id="m1"), timeout=5)
    chunks = []
    for chunk in stub.PredictStream(inference_pb2.PredictRequest(model_id="m1"), timeout=5):
        chunks.append(chunk)
        mesh.gateway.delivered(chunk.index)
    with pytest.raises(grpc.RpcError) as failure:
        stub.Predict(inference_pb2.PredictRequest(model_id="missing"), timeout=5)

    assert reply.model_id == "m1"
    assert [chunk.index for chunk in chunks] == list(range(STREAM_EVENTS))
    assert failure.value.code() == grpc.StatusCode.NOT_FOUND
    assert failure.value.details() == "gateway says NOT_FOUND"


def test_other_grpc_services_are_not_exposed(mesh: Mesh) -> None:
    before = len(mesh.gateway.calls)

    with pytest.raises(grpc.RpcError) as failure:
        health_pb2_grpc.HealthStub(mesh.channel).Check(health_pb2.HealthCheckRequest(), timeout=5)

    assert failure.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert failure.value.details() == "no such route"  # gRPC framing, not a JSON body
    assert len(mesh.gateway.calls) == before


def test_health_and_metrics(mesh: Mesh) -> None:
    health = mesh.http.get("/health")
    metrics = mesh.http.get("/metrics")

    assert health.status_code == 200
    assert health.json() == {"status": "SERVING", "services": {"gateway": {"status": "SERVING"}}, "not_serving": []}
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert metrics.text == "medai_up 1\n"


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/no/such/route"),
    ("GET", "/models/m1/predict"),  # known path, wrong method
    ("POST", "/medai.gateway.v1.Gateway/Predict"),  # a gRPC path called as JSON
])
def test_unknown_route_answers_404_json(mesh: Mesh, method: str, path: str) -> None:
    before = len(mesh.gateway.calls)

    answer = mesh.http.request(method, path, json={})

    assert answer.status_code == 404
    assert answer.json() == {"code": 5, "message": "no such route"}
    assert len(mesh.gateway.calls) == before


@pytest.mark.parametrize("model_id", sorted(ERROR_MODELS))
def test_gateway_status_becomes_http_status(mesh: Mesh, model_id: str) -> None:
    code, http_status = ERROR_MODELS[model_id]

    answer = mesh.http.post(f"/models/{model_id}/predict", json={"inputs": "x"})

    assert answer.status_code == http_status
    assert answer.json()["code"] == code.value[0]
    assert answer.json()["message"] == f"gateway says {code.name}"
    assert answer.headers["grpc-status"] == str(code.value[0])


@pytest.mark.parametrize("content", [
    f'{{"inputs": "{PHI_TEXT}", '.encode(),  # cut short
    f'{{"inputs": "x", "parameters": {{"max_new_tokens": "{PHI_TEXT}"}}}}'.encode(),  # wrong type
    f'["{PHI_TEXT}"]'.encode(),  # not an object
    PHI_TEXT.encode(),  # not JSON at all
])
def test_malformed_json_answers_400_without_echoing_the_body(mesh: Mesh, content: bytes) -> None:
    before = len(mesh.gateway.calls_to("Predict"))

    answer = mesh.http.post("/models/m1/predict", content=content, headers={"content-type": "application/json"})

    assert answer.status_code == 400
    assert answer.json() == BAD_BODY_MESSAGE
    _assert_no_phi(answer.text)
    _assert_no_phi(json.dumps(dict(answer.headers)))
    assert len(mesh.gateway.calls_to("Predict")) == before


def test_oversized_body_answers_413(mesh: Mesh) -> None:
    filler = PHI_TEXT * (2 * mesh.edge.settings.max_request_bytes // len(PHI_TEXT))

    answer = mesh.http.post("/models/m1/predict", json={"inputs": filler})

    assert answer.status_code == 413
    assert answer.json() == {"code": 3, "message": "request body too large"}


def test_query_parameters_must_name_fields(mesh: Mesh) -> None:
    known = mesh.http.get("/v1/audit/records", params={"limit": 2, "after_sequence": 5})
    unknown = mesh.http.get("/v1/audit/records", params={"note": PHI_NAME})

    assert known.status_code == 200
    request = mesh.gateway.calls_to("ListAuditRecords")[-1].request
    assert (request.limit, request.after_sequence) == (2, 5)
    assert unknown.status_code == 400
    _assert_no_phi(unknown.text)


def test_trusted_headers_are_stripped_and_request_id_forwarded(mesh: Mesh) -> None:
    spoofed = {"x-medai-role": "admin", "X-Medai-Principal-Id": "root", "x_medai_role": "admin",
               "x-envoy-original-path": "/v1/audit:verify", "x-request-id": "client-req-42"}

    answer = mesh.http.get("/health", headers=spoofed)

    metadata = mesh.gateway.calls_to("GetHealth")[-1].metadata
    assert answer.status_code == 200
    assert not [key for key in metadata if key.startswith(("x-medai", "x_medai"))]
    assert metadata["x-envoy-original-path"] == "/health"
    assert metadata["x-request-id"] == "client-req-42"
    assert answer.headers["x-request-id"] == "client-req-42"


def test_request_id_is_generated_when_absent(mesh: Mesh) -> None:
    answer = mesh.http.get("/health")

    forwarded = mesh.gateway.calls_to("GetHealth")[-1].metadata["x-request-id"]
    assert len(forwarded) >= 16
    assert answer.headers["x-request-id"] == forwarded


def test_cors_allows_only_the_configured_origin(mesh: Mesh) -> None:
    preflight = {"access-control-request-method": "POST", "access-control-request-headers": "authorization"}

    allowed = mesh.http.options("/models/m1/predict", headers={"origin": ALLOWED_ORIGIN, **preflight})
    refused = mesh.http.options("/models/m1/predict", headers={"origin": "https://evil.example", **preflight})
    actual = mesh.http.get("/health", headers={"origin": ALLOWED_ORIGIN})

    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert "access-control-allow-origin" not in refused.headers
    assert actual.headers["access-control-allow-origin"] == ALLOWED_ORIGIN


def test_traceparent_reaches_the_gateway_and_spans_are_exported(mesh: Mesh) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"

    mesh.http.get("/health", headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})

    forwarded = mesh.gateway.calls_to("GetHealth")[-1].metadata["traceparent"]
    assert forwarded.split("-")[1] == trace_id
    assert forwarded.split("-")[2] != "00f067aa0ba902b7"  # Envoy's own span is the parent now
    _wait_for(lambda: any(span_trace == trace_id for span_trace, _ in mesh.receiver.spans), "Envoy's spans")


def test_access_log_is_json_without_bodies_or_queries(mesh: Mesh) -> None:
    ok_id, failed_id, refused_id = "log-ok-1", "log-failed-1", "log-refused-1"
    mesh.http.post("/models/m1/predict", json={"inputs": PHI_TEXT}, headers={"x-request-id": ok_id})
    mesh.http.post("/models/missing/predict", json={"inputs": PHI_TEXT}, headers={"x-request-id": failed_id})
    mesh.http.get("/v1/audit/records", params={"note": PHI_SSN}, headers={"x-request-id": refused_id})

    def logged() -> dict[str, dict[str, Any]] | None:
        entries = {entry["request_id"]: entry for entry in map(json.loads, mesh.edge.access_log_lines())}
        return entries if {ok_id, failed_id, refused_id} <= entries.keys() else None

    entries = _wait_for(logged, "access log lines")
    _assert_no_phi("\n".join(mesh.edge.access_log_lines()))
    ok, failed, refused = entries[ok_id], entries[failed_id], entries[refused_id]
    assert (ok["method"], ok["path"], ok["status"], ok["grpc_status"]) == ("POST", "/models/m1/predict", 200, 0)
    assert ok["upstream_host"].startswith("127.0.0.1:")
    assert ok["bytes_received"] > 0 and ok["duration_ms"] >= 0
    assert "user_agent" not in ok  # a client-written header: it may carry anything, PHI included
    assert (failed["status"], failed["grpc_status"]) == (404, grpc.StatusCode.NOT_FOUND.value[0])
    assert (refused["path"], refused["status"]) == ("/v1/audit/records", 400)



def test_a_stream_cut_short_delivers_its_error_event_and_closes_cleanly(mesh: Mesh) -> None:
    events = []
    with mesh.http.stream("POST", f"/models/{CUT_MODEL}/predict:stream", json={"inputs": "hello"}) as answer:
        assert answer.status_code == 200  # sent before the failure
        for line in answer.iter_lines():  # ends without a transport error
            if line.startswith("data:"):
                events.append(json.loads(line.removeprefix("data:")))
    assert events[0]["text"] == "tok0"
    assert events[-1]["error"] == {"code": "UNAVAILABLE", "message": "model worker unavailable",
                                   "request_id": "req-cut"}
    assert "finish_reason" not in events[-1]


def test_oversized_headers_answer_431_without_echo(mesh: Mesh) -> None:
    before = len(mesh.gateway.calls)
    answer = mesh.http.get("/models", headers={"authorization": "Bearer " + PHI_NAME * 800,
                                               "cookie": "x=" + PHI_SSN * 100})
    assert answer.status_code == 431
    assert answer.json() == {"code": 3, "message": "request headers too large"}
    _assert_no_phi(answer.text)
    assert len(mesh.gateway.calls) == before


def test_readiness_fails_once_envoy_is_told_to_drain(mesh: Mesh) -> None:
    admin = f"http://127.0.0.1:{mesh.edge.settings.admin_port}"
    assert mesh.http.get("/ready").status_code == 200
    httpx.post(f"{admin}/healthcheck/fail")
    try:
        assert mesh.http.get("/ready").status_code == 503
        assert mesh.http.get("/health").status_code == 200  # in-flight and new calls still reach the mesh
    finally:
        httpx.post(f"{admin}/healthcheck/ok")
    assert mesh.http.get("/ready").status_code == 200
