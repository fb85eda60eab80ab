"""The OpenAI-compatible API and the API documentation on the whole mesh (`make run`, the shipped SmolLM2 and
MiniLM models): the official `openai` client for every route and error class, Schemathesis over the
generated OpenAPI document against the live mesh, and the Swagger UI page in headless Chromium."""
from __future__ import annotations

import base64
import os
import shutil
import struct
import subprocess
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.local_mesh import LocalMesh, running_mesh

pytestmark = pytest.mark.slow

GENERATION, CHAT, EMBEDDING = "smollm2-135m-instruct", "smollm2-135m-chat", "all-minilm-l6-v2"
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / ".artifacts"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    try:
        with running_mesh(tmp_path_factory.mktemp("state"), tmp_path_factory.mktemp("data")) as running:
            yield running
    except RuntimeError as error:
        pytest.fail(str(error))


def client(mesh: LocalMesh, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{mesh.ports.base_url}/v1", api_key=key or mesh.key, max_retries=0, timeout=120)


def new_key(mesh: LocalMesh, *options: str) -> str:
    """A key made with the CLI, as an operator would, in the mesh's own database."""
    env = {**os.environ, "APP_STATE_DIR": str(mesh.state_dir), "APP_DATA_DIR": str(mesh.data_dir)}
    created = subprocess.run([str(ROOT / ".venv" / "bin" / "medai"), "keys", "create", "--name", "openai test",
                              *options], env=env, capture_output=True, text=True, timeout=60)
    assert created.returncode == 0, created.stderr
    return created.stdout.strip().splitlines()[-1]


def test_chat_completion_with_the_shipped_model(mesh):
    answer = client(mesh).chat.completions.create(
        model=GENERATION, messages=[{"role": "system", "content": "Answer briefly."},
                                    {"role": "user", "content": "Name one symptom of anemia."}],
        max_tokens=16, temperature=0, seed=7)
    assert answer.object == "chat.completion" and answer.model == GENERATION
    assert answer.choices[0].message.content.strip() and answer.choices[0].finish_reason in ("stop", "length")
    assert answer.usage.prompt_tokens > 0 and 0 < answer.usage.completion_tokens <= 16
    assert isinstance(answer.created, int) and answer.id.startswith("chatcmpl-")


def test_streamed_chat_completion_sends_deltas_then_usage(mesh):
    stream = client(mesh).chat.completions.create(
        model=CHAT, messages=[{"role": "user", "content": "Describe anemia in one sentence."}], max_tokens=24,
        stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(choice.delta.content or "" for chunk in chunks for choice in chunk.choices)
    assert text.strip() and len([chunk for chunk in chunks if chunk.choices]) >= 2
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices][-1] in ("stop", "length")
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_completion_of_a_plain_prompt(mesh):
    answer = client(mesh).completions.create(model=GENERATION, prompt="Anemia is a condition in which",
                                             max_tokens=8, temperature=0)
    assert answer.object == "text_completion" and answer.choices[0].text.strip()
    assert answer.usage.completion_tokens > 0


def test_embeddings_as_floats_and_base64_are_equal(mesh):
    texts = ["chest pain", "shortness of breath"]
    floats = client(mesh).embeddings.create(model=EMBEDDING, input=texts, encoding_format="float")
    encoded = httpx.post(f"{mesh.ports.base_url}/v1/embeddings", headers=mesh.auth(), timeout=60,
                         json={"model": EMBEDDING, "input": texts, "encoding_format": "base64"}).json()
    decoded = [struct.unpack(f"<{len(floats.data[0].embedding)}f", base64.b64decode(item["embedding"]))
               for item in encoded["data"]]
    assert [list(vector) for vector in decoded] == [item.embedding for item in floats.data]
    assert len(floats.data[0].embedding) == 384 and floats.usage.prompt_tokens > 0
    by_default = client(mesh).embeddings.create(model=EMBEDDING, input=texts)  # the client asks for base64
    assert [item.embedding for item in by_default.data] == [item.embedding for item in floats.data]


def test_models_list_and_retrieve(mesh):
    listed = client(mesh).models.list()
    assert {GENERATION, CHAT, EMBEDDING} <= {model.id for model in listed.data}
    assert client(mesh).models.retrieve(EMBEDDING).owned_by == "medserve"


def test_each_error_class(mesh):
    message = [{"role": "user", "content": "Patient Quentin Zabrowski has a cough."}]
    cases = [
        (openai.AuthenticationError, client(mesh, "msk_0123456789ab_nosuchsecret")),
        (openai.PermissionDeniedError, client(mesh, new_key(mesh, "--role", "auditor"))),
    ]
    for error_class, api in cases:
        with pytest.raises(error_class):
            api.chat.completions.create(model=GENERATION, messages=message, max_tokens=4)
    with pytest.raises(openai.NotFoundError) as missing:
        client(mesh).chat.completions.create(model="no-such-model", messages=message)
    assert missing.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        client(mesh).chat.completions.create(model=GENERATION, messages=message, temperature=7)
    assert bad.value.body["param"] == "temperature" and "Zabrowski" not in str(bad.value.body)
    limited = client(mesh, new_key(mesh, "--role", "admin", "--rpm", "1"))
    limited.models.list()
    with pytest.raises(openai.RateLimitError) as throttled:
        limited.models.list()
    assert int(throttled.value.response.headers["retry-after"]) >= 1


def test_openapi_document_and_docs_need_no_key(mesh):
    document = httpx.get(f"{mesh.ports.base_url}/openapi.json", timeout=30)
    assert document.status_code == 200 and document.json()["openapi"] == "3.1.0"
    assert {"/v1/chat/completions", "/models/{model_id}/predict", "/health"} <= set(document.json()["paths"])
    page = httpx.get(f"{mesh.ports.base_url}/docs", timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert httpx.get(f"{mesh.ports.base_url}/docs/swagger-ui-bundle.js", timeout=30).status_code == 200


def test_schemathesis_finds_no_server_error_and_answers_conform(mesh, tmp_path):
    run = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "st"), "run", f"{mesh.ports.base_url}/openapi.json",
         "-H", f"Authorization: Bearer {mesh.key}",
         "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                     "response_schema_conformance",
         "--max-examples", "12", "--request-timeout", "120", "--seed", "20261130", "--no-color"],
        capture_output=True, text=True, timeout=1200, cwd=tmp_path)
    summary = run.stdout[-3000:]
    assert run.returncode == 0, summary
    assert "passed" in summary and "failure" not in summary.lower().split("summary")[-1]


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_docs_page_lists_the_routes_in_a_browser(mesh, tmp_path):
    url = f"{mesh.ports.base_url}/docs"
    common = [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=20000"]
    dom = subprocess.run(["chromium", *common, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    for route in ("/v1/chat/completions", "/v1/embeddings", "/models/{model_id}/predict:stream", "/v1/deidentify"):
        assert route in dom.stdout, route
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "docs.png"
    subprocess.run(["chromium", *common, "--window-size=1280,2400", f"--screenshot={shot}", url],
                   capture_output=True, timeout=120, check=True)
    assert shot.stat().st_size > 10_000
