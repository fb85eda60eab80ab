"""The Envoy edge's own answers when the gateway is down and when its global rate limit is hit.

One Envoy (1 request per second, nothing listening at the gateway address) serves the module.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import grpc
import httpx
import pytest

from libs.config import EnvoySettings, TelemetrySettings
from medai.common.v1 import inference_pb2
from medai.gateway.v1 import gateway_pb2_grpc
from tests.support.edge import RunningEdge, running_edge
from tests.support.ports import free_ports

PHI_TEXT = "Patient Johnathan Q. Smithers, SSN 078-05-1120"
WAIT_SECONDS = 5.0


@pytest.fixture(scope="module")
def edge(tmp_path_factory) -> Iterator[RunningEdge]:
    workdir = tmp_path_factory.mktemp("envoy-limits")
    port, admin_port, closed_port = free_ports(3)
    settings = EnvoySettings(
        host="127.0.0.1", port=port, admin_port=admin_port, gateway_address=f"127.0.0.1:{closed_port}",
        cors_origins=[], local_rate_limit_per_second=1, access_log_path=str(workdir / "access.log"),
        telemetry=TelemetrySettings(sdk_disabled=True),
    )
    with running_edge(settings, workdir) as running:
        yield running


def _collect_until(call: Callable[[], object], wanted: Callable[[list], bool]) -> list:
    """Repeat call until wanted(answers so far) holds; fails at the deadline."""
    answers: list = []
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        answers.append(call())
        if wanted(answers):
            return answers
    raise AssertionError(f"not seen within {WAIT_SECONDS}s: {answers[-3:]}")


def test_gateway_down_and_rate_limit_answer_generic_json(edge: RunningEdge) -> None:
    with httpx.Client(base_url=edge.base_url, timeout=5) as http:
        answers = _collect_until(
            lambda: http.post("/models/m1/predict", json={"inputs": PHI_TEXT}),
            lambda seen: {503, 429} <= {answer.status_code for answer in seen},
        )

    bodies = {answer.status_code: answer.json() for answer in answers}
    assert bodies[503] == {"code": 14, "message": "gateway unavailable"}
    assert bodies[429] == {"code": 8, "message": "rate limit exceeded, retry later"}
    assert next(a.headers.get("retry-after") for a in answers if a.status_code == 429) == "1"
    assert {answer.status_code for answer in answers} <= {503, 429}
    assert not [answer for answer in answers if "Smithers" in answer.text or "078-05" in answer.text]


def test_rate_limited_grpc_caller_gets_resource_exhausted(edge: RunningEdge) -> None:
    def call() -> grpc.StatusCode:
        try:
            stub.Predict(inference_pb2.PredictRequest(model_id="m1"), timeout=5)
        except grpc.RpcError as error:
            return error.code()
        return grpc.StatusCode.OK

    with grpc.insecure_channel(edge.grpc_target) as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)
        codes = _collect_until(call, lambda seen: grpc.StatusCode.RESOURCE_EXHAUSTED in seen)

    assert set(codes) <= {grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE}
