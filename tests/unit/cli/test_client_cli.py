"""`medai predict` / `medai models` against a real gRPC server standing in for the edge."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from typer.testing import CliRunner

from libs.cli import app
from medai.common.v1 import inference_pb2, models_pb2
from medai.gateway.v1 import gateway_pb2_grpc

KEY = "msk_0123456789ab_secret"
ROOT = Path(__file__).resolve().parents[3]
WAIT_SECONDS = 10.0


@dataclass
class FakeGateway(gateway_pb2_grpc.GatewayServicer):
    """Answers like the gateway; streams hold their second token until `release` is set."""

    authorizations: list[str] = field(default_factory=list)
    requests: list[inference_pb2.PredictRequest] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def _check(self, context) -> None:
        self.authorizations.append(dict(context.invocation_metadata()).get("authorization", ""))

    def ListModels(self, request, context):
        self._check(context)
        return models_pb2.ListModelsResponse(models=[
            models_pb2.ModelInfo(model_id="smollm2-135m-instruct", model_type="text-generation", model_version="v1",
                                 status="SERVING", device="cpu"),
            models_pb2.ModelInfo(model_id="all-minilm-l6-v2", model_type="embedding", model_version="v2",
                                 status="UNAVAILABLE", device="cpu"),
        ])

    def Predict(self, request, context):
        self._check(context)
        self.requests.append(request)
        if request.model_id == "busy":
            context.set_trailing_metadata((("retry-after", "3"),))
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "rate limit of requests per minute exceeded")
        answer = inference_pb2.PredictResponse(request_id="r1", model_id=request.model_id)
        if request.model_id == "emb":
            answer.outputs.list_value.values.add().list_value.values.add().number_value = 0.5
        else:
            answer.outputs.string_value = "Rest and fluids."
        return answer

    def PredictStream(self, request, context):
        self._check(context)
        self.requests.append(request)
        yield inference_pb2.PredictStreamChunk(index=0, text="Rest")
        if not self.release.wait(WAIT_SECONDS):
            return
        yield inference_pb2.PredictStreamChunk(index=1, text=" and fluids.")
        yield inference_pb2.PredictStreamChunk(index=2, text="", finish_reason="stop",
                                               usage=inference_pb2.Usage(generated_tokens=4))


@pytest.fixture
def gateway() -> Iterator[tuple[FakeGateway, str]]:
    fake = FakeGateway()
    server = grpc.server(futures.ThreadPoolExecutor(4))
    gateway_pb2_grpc.add_GatewayServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield fake, f"127.0.0.1:{port}"
    fake.release.set()
    server.stop(None)


@pytest.fixture
def env(gateway, tmp_path, monkeypatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)
    values = {"MEDAI_ADDRESS": gateway[1], "MEDAI_API_KEY": KEY, "APP_STATE_DIR": str(tmp_path / "state")}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def test_models_lists_the_catalogue(gateway, env):
    result = CliRunner().invoke(app, ["models"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["model_id", "model_type", "model_version", "status", "device"]
    assert lines[1].split() == ["smollm2-135m-instruct", "text-generation", "v1", "SERVING", "cpu"]
    assert lines[2].split()[:4] == ["all-minilm-l6-v2", "embedding", "v2", "UNAVAILABLE"]
    assert gateway[0].authorizations == [f"Bearer {KEY}"]
    listed = json.loads(CliRunner().invoke(app, ["models", "--json"]).stdout)
    assert [m["model_id"] for m in listed["models"]] == ["smollm2-135m-instruct", "all-minilm-l6-v2"]


def test_predict_prints_the_answer_and_sends_the_parameters(gateway, env):
    result = CliRunner().invoke(app, ["predict", "m", "Name one symptom of anemia.", "--max-new-tokens", "16",
                                      "--temperature", "0", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "Rest and fluids.\n"
    sent = gateway[0].requests[0]
    assert (sent.model_id, sent.inputs.string_value) == ("m", "Name one symptom of anemia.")
    assert (sent.parameters.max_new_tokens, sent.parameters.temperature, sent.parameters.seed) == (16, 0.0, 3)
    assert not sent.parameters.HasField("top_p")


def test_embeddings_print_as_json(gateway, env):
    result = CliRunner().invoke(app, ["predict", "emb", "chest pain"])
    assert json.loads(result.stdout)["outputs"] == [[0.5]]


def test_the_dev_key_is_used_when_none_is_set(gateway, env, monkeypatch, tmp_path):
    monkeypatch.delenv("MEDAI_API_KEY")
    assert CliRunner().invoke(app, ["models"]).exit_code == 2  # no key anywhere: a clear usage error
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "dev-api-key").write_text("msk_dev_key\n")
    assert CliRunner().invoke(app, ["models"]).exit_code == 0
    assert gateway[0].authorizations[-1] == "Bearer msk_dev_key"


def test_errors_exit_1_with_the_status_and_retry_hint(gateway, env):
    result = CliRunner().invoke(app, ["predict", "busy", "x"])
    assert result.exit_code == 1
    assert "RESOURCE_EXHAUSTED" in result.stderr and "retry after 3 s" in result.stderr


def test_stream_prints_tokens_as_they_arrive(gateway, env):
    fake, _ = gateway
    process = subprocess.Popen([sys.executable, "-m", "libs.cli", "predict", "m", "Describe anemia.", "--stream"],
                               cwd=ROOT, env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = bytearray()
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while b"Rest" not in seen:  # the second token is held back until the first was printed
            assert time.monotonic() < deadline and process.poll() is None, "first token not printed on arrival"
            seen += process.stdout.read1(64)
        fake.release.set()
        out, err = process.communicate(timeout=WAIT_SECONDS)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert bytes(seen) + out == b"Rest and fluids.\n"
    assert b"[stop, 4 tokens]" in err
