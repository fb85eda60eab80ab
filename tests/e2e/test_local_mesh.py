"""A new user's path: `make run` on a clean checkout, then the Part B routes through Envoy.

Starts the real mesh (Envoy, six services, the shipped SmolLM2, MiniLM and spaCy models) on free
ports, so it can run beside a developer's own `make run`.
"""
from __future__ import annotations

import json
import signal
import time
import uuid

import grpc
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from medai.common.v1 import inference_pb2, models_pb2
from medai.gateway.v1 import gateway_pb2_grpc
from tests.support.local_mesh import SERVICES, running_mesh
from tests.support.otlp import running_receiver
from tests.support.processes import processes_with_marker, wait_for_no_processes

pytestmark = pytest.mark.slow

PHI_TEXT = "Patient John Q. Smith, SSN 123-45-6789, lives at 12 Elm Street"


@pytest.fixture(scope="module")
def span_receiver():
    with running_receiver() as (receiver, port):
        yield receiver, port


@pytest.fixture(scope="module")
def mesh(tmp_path_factory, span_receiver):
    receiver, receiver_port = span_receiver
    # Traces go to an in-test OTLP collector (Jaeger's role); exporters flush every 200 ms.
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver_port}", "OTEL_BSP_SCHEDULE_DELAY": "200"}
    try:
        with running_mesh(tmp_path_factory.mktemp("state"), tmp_path_factory.mktemp("data"), otel) as running:
            running.spans = receiver
            yield running
    except RuntimeError as error:
        pytest.fail(str(error))


def test_dev_key_is_created_private(mesh):
    key_file = mesh.state_dir / "dev-api-key"
    assert key_file.stat().st_mode & 0o077 == 0
    assert mesh.key.startswith("msk_")
    assert any("dev-api-key" in line for line in mesh.lines)


def test_health_reports_every_service_serving(mesh):
    response = httpx.get(f"{mesh.ports.base_url}/health")
    assert response.status_code == 200
    health = response.json()
    assert health["status"] == "SERVING"
    assert {name: health["services"][name]["status"] for name in SERVICES} == dict.fromkeys(SERVICES, "SERVING")


def test_models_lists_the_generation_model(mesh):
    # The catalogue follows worker health within a few seconds (registry refresh, gateway cache).
    deadline = time.monotonic() + 15
    while True:
        response = httpx.get(f"{mesh.ports.base_url}/models", headers=mesh.auth())
        assert response.status_code == 200
        types = {m["model_type"]: m for m in response.json()["models"]}
        assert types["text-generation"]["model_id"] == "smollm2-135m-instruct"
        if types["text-generation"]["status"] == "SERVING" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert types["text-generation"]["status"] == "SERVING"
    assert {"embedding", "conversation"} <= types.keys()


def test_predict_returns_generated_text_in_the_seed_format(mesh):
    body = {"inputs": "Name one symptom of anemia.", "parameters": {"max_new_tokens": 16, "temperature": 0}}
    response = httpx.post(f"{mesh.ports.base_url}/models/smollm2-135m-instruct/predict", json=body,
                          headers=mesh.auth(), timeout=120)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert {"request_id", "model_id", "outputs", "processing_time", "timestamp", "metadata"} <= answer.keys()
    assert isinstance(answer["outputs"], str) and len(answer["outputs"].split()) >= 3
    assert 0 < answer["metadata"]["tokens_generated"] <= 16
    assert answer["metadata"]["model_version"]


def test_predict_stream_sends_events_as_tokens_come(mesh):
    body = {"inputs": "Describe anemia in two sentences.", "parameters": {"max_new_tokens": 24, "temperature": 0}}
    arrivals: list[tuple[float, dict]] = []
    with httpx.stream("POST", f"{mesh.ports.base_url}/models/smollm2-135m-instruct/predict:stream", json=body,
                      headers=mesh.auth(), timeout=120) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data:"):
                arrivals.append((time.monotonic(), json.loads(line[len("data:"):])))
    events = [event for _, event in arrivals]
    assert len(events) >= 3
    assert events[-1]["finish_reason"] in ("length", "stop", "stop_sequence")
    assert events[-1]["usage"]["generated_tokens"] > 0
    assert "".join(event.get("text", "") for event in events).strip()
    # Streaming, not buffering: the first token arrived well before the last one.
    assert arrivals[-1][0] - arrivals[0][0] > 0.1


def test_native_grpc_client_through_envoy(mesh):
    with grpc.insecure_channel(f"127.0.0.1:{mesh.ports.envoy}") as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)
        metadata = tuple(mesh.auth().items())
        models = stub.ListModels(models_pb2.ListModelsRequest(), metadata=metadata, timeout=30)
        assert "smollm2-135m-instruct" in {m.model_id for m in models.models}
        request = inference_pb2.PredictRequest(model_id="smollm2-135m-instruct")
        request.inputs.string_value = "Name one symptom of anemia."
        request.parameters.max_new_tokens = 8
        request.parameters.temperature = 0
        answer = stub.Predict(request, metadata=metadata, timeout=120)
        assert answer.outputs.string_value.strip()
        assert answer.metadata.tokens_generated > 0


def test_metrics_has_medai_series_from_every_service(mesh):
    response = httpx.get(f"{mesh.ports.base_url}/metrics", timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    services = {
        sample.labels.get("service")
        for family in text_string_to_metric_families(response.text) if family.name.startswith("medai_")
        for sample in family.samples
    }
    assert set(SERVICES) <= services


@pytest.mark.parametrize(
    ("path", "body", "with_key", "status"),
    [
        ("/models/no-such-model/predict", {"inputs": PHI_TEXT}, True, 404),
        ("/models/smollm2-135m-instruct/predict", {"inputs": PHI_TEXT}, False, 401),
        ("/models/smollm2-135m-instruct/predict", {"inputs": PHI_TEXT, "parameters": {"temperature": 9}}, True, 400),
        ("/models/smollm2-135m-instruct/predict", {"inputs": [PHI_TEXT, 7]}, True, 400),
        ("/no/such/route", None, True, 404),
    ],
)
def test_client_errors_map_to_http_status_without_echoing_input(mesh, path, body, with_key, status):
    headers = mesh.auth() if with_key else {}
    response = httpx.post(f"{mesh.ports.base_url}{path}", json=body, headers=headers, timeout=60)
    assert response.status_code == status
    assert "Smith" not in response.text and "123-45-6789" not in response.text


def test_malformed_json_is_400_without_echo(mesh):
    raw = b'{"inputs": "Patient John Q. Smith SSN 123-45-6789", "parameters": {'
    response = httpx.post(f"{mesh.ports.base_url}/models/smollm2-135m-instruct/predict", content=raw,
                          headers={**mesh.auth(), "content-type": "application/json"}, timeout=30)
    assert response.status_code == 400
    assert "Smith" not in response.text and "123-45-6789" not in response.text


def test_one_trace_follows_a_request_across_services_without_phi(mesh):
    trace_id, parent_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    headers = {**mesh.auth(), "traceparent": f"00-{trace_id}-{parent_id}-01"}
    body = {"inputs": PHI_TEXT, "parameters": {"max_new_tokens": 4, "temperature": 0}}
    response = httpx.post(f"{mesh.ports.base_url}/models/smollm2-135m-instruct/predict", json=body, headers=headers,
                          timeout=120)
    assert response.status_code == 200
    expected = {"medai-gateway", "medai-compliance", "medai-generation"}
    deadline = time.monotonic() + 30  # Envoy flushes its spans every 5 s
    while time.monotonic() < deadline:
        services = {span.service for span in mesh.spans.in_trace(trace_id)}
        if expected <= services and any("envoy" in name for name in services):
            break
        time.sleep(0.2)
    spans = mesh.spans.in_trace(trace_id)
    services = {span.service for span in spans}
    assert expected <= services and any("envoy" in name for name in services), services
    values = " ".join(value for span in spans for value in span.attribute_values)
    assert "Smith" not in values and "123-45-6789" not in values
    assert response.json()["request_id"] in values  # every server span carries medai.request_id


def test_sigterm_stops_every_process(mesh):
    """Runs last: SIGTERM to `make run` stops Envoy and all six services; nothing is left behind."""
    assert len(processes_with_marker(mesh.marker)) >= 1 + len(SERVICES)
    mesh.process.send_signal(signal.SIGTERM)
    mesh.process.wait(60)
    assert wait_for_no_processes(mesh.marker, 30) == []
