"""The fault suite: the whole mesh (`make run`, supervised) on PostgreSQL and Redis, each reached through a
TCP proxy the tests cut, meeting what production throws at it, seen from outside as a client sees it:
a worker killed mid-stream, the database and Redis going away, overload, malformed input on every
route, per-key limits, client-named sessions, refused calls in the audit trail, and SIGTERM during
streams (last: it stops the mesh). Each test prints what the client saw (`pytest -s`)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.databases import POSTGRES_URL, postgres_available
from tests.support.local_mesh import LocalMesh, running_mesh
from tests.support.processes import service_pid, wait_for_no_processes
from tests.support.redis_server import redis_available
from tests.support.tcp_proxy import ThreadedTcpProxy

pytestmark = pytest.mark.slow

GENERATION, EMBEDDING, CHAT = "smollm2-135m-instruct", "all-minilm-l6-v2", "smollm2-135m-chat"
ROOT = Path(__file__).resolve().parents[2]
MEDAI = ROOT / ".venv" / "bin" / "medai"
PHI_NOTE = "Patient Quentin Zabrowski, SSN 536-22-8145, phone 617-555-0142, has chest pain."
# Small model-worker limits, so that overload and a drain with queued streams are cheap to produce.
WORKER_SLOTS, WORKER_QUEUE = 2, 2
CLIENT_TIMEOUT_SECONDS = 30.0
# For calls that wait their turn behind other generations (a slow or busy machine decodes slowly).
SLOW_CLIENT_TIMEOUT_SECONDS = 180.0
# Tokens each stream of the SIGTERM test generates (two streams decode at once, two wait their turn).
STREAM_TOKENS = 32


@dataclass(frozen=True)
class Stores:
    database_url: str  # through the proxy: what the mesh uses
    direct_database_url: str  # the same schema, not through the proxy: what the test checks with
    redis_url: str
    database: ThreadedTcpProxy
    redis: ThreadedTcpProxy


@pytest.fixture(scope="module")
def stores() -> Iterator[Stores]:
    if not (postgres_available() and redis_available()):
        pytest.skip("the fault suite needs PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379")
    schema = f"faults_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    database, redis = ThreadedTcpProxy("127.0.0.1", 5432), ThreadedTcpProxy("127.0.0.1", 6379)
    database.start()
    redis.start()
    options = f"?options=-csearch_path%3D{schema}"
    try:
        yield Stores(f"postgresql://postgres@127.0.0.1:{database.port}/test{options}", f"{POSTGRES_URL}{options}",
                     f"redis://127.0.0.1:{redis.port}/0", database, redis)
    finally:
        database.close()
        redis.close()
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(scope="module")
def mesh(tmp_path_factory, stores) -> Iterator[LocalMesh]:
    env = {
        "APP_DATABASE_URL": stores.database_url, "APP_REDIS_URL": stores.redis_url,
        "CONVERSATION_SESSION_KEY_PREFIX": f"medai-faults-{uuid.uuid4().hex[:8]}:session:",
        "SERVING_MAX_CONCURRENT_REQUESTS": str(WORKER_SLOTS), "SERVING_MAX_QUEUE": str(WORKER_QUEUE),
        "SERVING_MAX_NEW_TOKENS_LIMIT": "128", "SERVING_DEFAULT_MAX_NEW_TOKENS": "8",
        "MEDICAL_AUDIT_RETRY_SECONDS": "1",
        # Room for the four streams of the SIGTERM test to finish on a slow or busy machine.
        "APP_DRAIN_SECONDS": "120",
    }
    try:
        with running_mesh(tmp_path_factory.mktemp("state"), tmp_path_factory.mktemp("data"), env) as running:
            yield running
    except RuntimeError as error:
        pytest.fail(str(error))


@pytest.fixture(scope="module")
def http(mesh) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=mesh.ports.base_url, headers=mesh.auth(), timeout=CLIENT_TIMEOUT_SECONDS) as client:
        yield client


def cli(mesh: LocalMesh, stores: Stores, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "APP_DATABASE_URL": stores.direct_database_url, "APP_STATE_DIR": str(mesh.state_dir)}
    return subprocess.run([str(MEDAI), *args], env=env, capture_output=True, text=True, timeout=60)


def new_key(mesh: LocalMesh, stores: Stores, *options: str, role: str = "admin") -> str:
    created = cli(mesh, stores, "keys", "create", "--role", role, "--name", f"faults {role}", *options)
    assert created.returncode == 0, created.stderr
    return created.stdout.strip().splitlines()[-1]


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def pid_of(mesh: LocalMesh, service: str) -> int:
    return service_pid(mesh.marker, service)


def sse_events(response: httpx.Response) -> Iterator[dict]:
    for line in response.iter_lines():
        if line.startswith("data:"):
            yield json.loads(line.removeprefix("data:"))


def embed(http: httpx.Client, text: str = "chest pain", **headers: str) -> httpx.Response:
    return http.post(f"/models/{EMBEDDING}/predict", json={"inputs": text}, headers=headers)


def generate(http: httpx.Client, text: str, tokens: int = 8, temperature: float = 0.0) -> httpx.Response:
    body = {"inputs": text, "parameters": {"max_new_tokens": tokens, "temperature": temperature}}
    return http.post(f"/models/{GENERATION}/predict", json=body)


def wait_until(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@dataclass
class Probe:
    """Calls made in the background while a fault happens: (seconds since start, what, status, detail)."""

    started: float = field(default_factory=time.monotonic)
    samples: list[tuple[float, str, int, object]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def add(self, what: str, status: int, detail: object = None) -> None:
        self.samples.append((time.monotonic() - self.started, what, status, detail))

    def statuses(self, what: str) -> list[int]:
        return [status for _, name, status, _ in self.samples if name == what]


def test_a_worker_killed_mid_stream_ends_the_stream_honestly_and_comes_back(mesh, http):
    probe = Probe()

    def keep_probing() -> None:
        with httpx.Client(base_url=mesh.ports.base_url, headers=mesh.auth(), timeout=10) as client:
            while not probe.stop.is_set():
                probe.add("embedding", embed(client).status_code)
                health = client.get("/health").json()
                probe.add("health", 200, (health["status"], tuple(health.get("not_serving", []))))
                time.sleep(0.05)

    prober = threading.Thread(target=keep_probing)
    prober.start()
    try:
        body = {"inputs": "Describe anemia in detail.", "parameters": {"max_new_tokens": 120, "temperature": 0}}
        events, killed_at = [], None
        with http.stream("POST", f"/models/{GENERATION}/predict:stream", json=body) as response:
            assert response.status_code == 200
            for event in sse_events(response):
                events.append((time.monotonic(), event))
                if len(events) == 3:
                    os.kill(pid_of(mesh, "generation"), signal.SIGKILL)
                    killed_at = time.monotonic()
        ended_at, last = events[-1]
        assert last.get("error", {}).get("code") == "UNAVAILABLE", last
        assert last["error"]["request_id"] and "finish_reason" not in last
        assert ended_at - killed_at < 2.0
        while_down = generate(http, "Name one symptom of anemia.")
        assert while_down.status_code == 503 and while_down.headers.get("content-type", "").startswith(
            "application/json")
        wait_until(lambda: generate(http, "Name one symptom of anemia.").status_code == 200, 180,
                   "the generation worker to serve again")
        recovered_at = time.monotonic()
    finally:
        probe.stop.set()
        prober.join()
    assert set(probe.statuses("embedding")) == {200}  # the other models kept answering throughout
    degraded = [detail for _, what, _, detail in probe.samples if what == "health" and detail[0] == "DEGRADED"]
    assert degraded and all(names == ("generation",) for _, names in degraded)
    restarts = [line for line in http.get("/metrics").text.splitlines()
                if line.startswith("medai_service_restarts_total") and 'program="generation"' in line]
    assert restarts and float(restarts[0].rsplit(" ", 1)[1]) >= 1
    print(f"\nworker killed mid-stream: {len(events) - 1} text events, then the error event "
          f"{ended_at - killed_at:.2f} s after the kill; serving again {recovered_at - killed_at:.1f} s after it; "
          f"{len(probe.statuses('embedding'))} embedding calls meanwhile, all 200")


def audit_request_ids(http: httpx.Client, page_size: int = 1000) -> list[str]:
    """Request ids of every audit record (each listing adds a record of its own: stop at a short page)."""
    ids, after = [], 0
    while True:
        page = http.get("/v1/audit/records", params={"after_sequence": after, "limit": page_size}).json()["records"]
        ids += [record["request_id"] for record in page]
        if len(page) < page_size:
            return ids
        after = int(page[-1]["sequence"])


def test_a_database_outage_loses_nothing_and_never_answers_500(mesh, http, stores):
    fresh_key = new_key(mesh, stores)  # created before the outage, never used: no gateway knows it yet
    sent: list[tuple[str, int, float]] = []
    stop = threading.Event()

    def load(worker: int) -> None:
        with httpx.Client(base_url=mesh.ports.base_url, headers=mesh.auth(), timeout=CLIENT_TIMEOUT_SECONDS) as client:
            while not stop.is_set():
                request_id = uuid.uuid4().hex
                started = time.monotonic()
                if worker % 2:
                    answer = client.post("/v1/deidentify", json={"text": PHI_NOTE},
                                         headers={"x-request-id": request_id})
                else:
                    answer = embed(client, f"chest pain {request_id}", **{"x-request-id": request_id})
                sent.append((request_id, answer.status_code, time.monotonic() - started))

    with ThreadPoolExecutor(3) as pool:
        workers = [pool.submit(load, worker) for worker in range(3)]
        time.sleep(2)
        stores.database.stop()
        cut_at = time.monotonic()
        time.sleep(6)  # past the key cache's and the catalogue's lifetimes
        started = time.monotonic()
        unknown = http.get("/models", headers=bearer(fresh_key))
        refused_in = time.monotonic() - started
        time.sleep(2)
        stores.database.start()
        outage = time.monotonic() - cut_at
        first_after = embed(http, "first call after the database came back")
        time.sleep(2)
        stop.set()
        for worker in workers:
            worker.result()

    assert first_after.status_code == 200, first_after.text
    assert unknown.status_code == 503 and "API key store unavailable" in unknown.json()["message"]
    assert refused_in < 5.0
    statuses = {status for _, status, _ in sent}
    assert statuses == {200}, statuses  # known keys kept working; audit records went to the spool
    slowest = max(seconds for _, _, seconds in sent)
    assert slowest < CLIENT_TIMEOUT_SECONDS
    expected = {request_id for request_id, _, _ in sent}
    recorded = wait_until(lambda: (ids := set(audit_request_ids(http))) >= expected and ids, 60,
                          "the audit spool to be replayed")
    assert expected <= recorded  # 0 audit records lost
    verified = http.post("/v1/audit:verify", json={}).json()
    assert verified["intact"] is True, verified
    by_cli = cli(mesh, stores, "audit", "verify")
    assert by_cli.returncode == 0, by_cli.stderr
    print(f"\ndatabase outage of {outage:.1f} s under load: {len(sent)} calls, all 200, slowest {slowest:.2f} s; "
          f"an unknown key got 503 in {refused_in:.2f} s; first call after the return 200; "
          f"{len(expected)} requests all in the audit chain; verify intact (API and CLI)")


def chat(http: httpx.Client, text: str, session_id: str = "", key: str | None = None) -> httpx.Response:
    body = {"inputs": text, "session_id": session_id, "parameters": {"max_new_tokens": 6}}
    return http.post(f"/models/{CHAT}/predict", json=body, headers=bearer(key) if key else None)


def test_a_redis_outage_fails_only_session_calls_and_they_work_again_after(mesh, http, stores):
    session = f"faults-{uuid.uuid4().hex[:8]}"
    assert chat(http, "I have a cough.", session).status_code == 200
    stores.redis.stop()
    try:
        started = time.monotonic()
        cut = [chat(http, "Since Monday.", session), chat(http, "A new conversation.")]
        refused_in = (time.monotonic() - started) / len(cut)
        others = [generate(http, "Name one symptom of anemia.").status_code, embed(http).status_code,
                  http.post("/v1/deidentify", json={"text": PHI_NOTE}).status_code]
    finally:
        stores.redis.start()
    assert [answer.status_code for answer in cut] == [503, 503]
    assert all(answer.json()["message"].startswith("session store unavailable") for answer in cut)
    assert refused_in < 3.0
    assert others == [200, 200, 200]
    after = chat(http, "Since Monday.", session)
    assert after.status_code == 200, after.text  # the first call after the return
    assert after.json()["metadata"]["session_id"] == session
    print(f"\nRedis outage: session calls 503 'session store unavailable' in {refused_in:.2f} s each; generation, "
          f"embedding, de-identification 200; the first session call after the return 200")


def test_client_named_sessions_continue_and_are_isolated_between_keys(mesh, http, stores):
    name = f"ward5-bed12.{uuid.uuid4().hex[:6]}"
    first = chat(http, "My name is Quentin and I have a cough.", name)
    second = chat(http, "Since Monday.", name)
    other_key = new_key(mesh, stores, role="clinician")
    theirs = chat(http, "Hello.", name, key=other_key)
    assert [answer.status_code for answer in (first, second, theirs)] == [200, 200, 200]
    assert first.json()["metadata"]["session_id"] == second.json()["metadata"]["session_id"] == name
    assert theirs.json()["metadata"]["session_id"] == name
    # Only the first key's session holds its history: a longer prompt on its second turn, not for the other key.
    assert second.json()["metadata"]["prompt_tokens"] > theirs.json()["metadata"]["prompt_tokens"]
    bad = chat(http, "Hello.", "not a valid name!")
    assert bad.status_code == 400 and bad.json()["message"].startswith("session_id:")


def test_per_key_limits_are_enforced_and_listed(mesh, http, stores):
    key = new_key(mesh, stores, "--rpm", "3")
    answers = [http.get("/models", headers=bearer(key)) for _ in range(4)]
    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
    assert int(answers[-1].headers["retry-after"]) >= 1
    listing = cli(mesh, stores, "keys", "list").stdout
    assert "rpm=3  tpm=-" in listing
    unlimited = [embed(http, f"burst {number}").status_code for number in range(150)]  # the dev key: no limit
    assert set(unlimited) == {200}


def test_refused_calls_are_in_the_audit_trail(mesh, http, stores):
    auditor = new_key(mesh, stores, role="auditor")
    ids = {name: uuid.uuid4().hex for name in ("missing", "unknown", "denied")}
    without = httpx.post(f"{mesh.ports.base_url}/v1/deidentify", json={"text": PHI_NOTE},
                         headers={"x-request-id": ids["missing"]})
    unknown = httpx.post(f"{mesh.ports.base_url}/v1/deidentify", json={"text": PHI_NOTE},
                         headers={"x-request-id": ids["unknown"], **bearer("msk_0123456789ab_notasecret")})
    denied = httpx.post(f"{mesh.ports.base_url}/v1/deidentify", json={"text": PHI_NOTE},
                        headers={"x-request-id": ids["denied"], **bearer(auditor)})
    assert (without.status_code, unknown.status_code, denied.status_code) == (401, 401, 403)

    def refusals() -> dict[str, dict]:
        found = {}
        for request_id in ids.values():
            records = http.get("/v1/audit/records", params={"request_id": request_id}).json()["records"]
            found.update({record["request_id"]: record for record in records})
        return found if len(found) == len(ids) else {}

    found = wait_until(refusals, 30, "the refused calls' audit records")
    assert {(found[ids[n]]["outcome"], found[ids[n]]["status_code"]) for n in ids} == {
        ("denied", "UNAUTHENTICATED"), ("denied", "PERMISSION_DENIED")}
    assert found[ids["unknown"]]["principal_id"] == "unverified:0123456789ab"
    assert found[ids["denied"]]["role"] == "auditor"
    assert "Quentin" not in json.dumps(found) and "536-22-8145" not in json.dumps(found)
    assert http.post("/v1/audit:verify", json={}).json()["intact"] is True
    assert cli(mesh, stores, "audit", "verify").returncode == 0


def test_overload_answers_429_with_retry_after_and_no_5xx(mesh):
    capacity = WORKER_SLOTS + WORKER_QUEUE

    def one(number: int) -> httpx.Response:
        body = {"inputs": f"Describe anemia, case {number}.", "parameters": {"max_new_tokens": 12, "temperature": 0.7}}
        return httpx.post(f"{mesh.ports.base_url}/models/{GENERATION}/predict", json=body, headers=mesh.auth(),
                          timeout=SLOW_CLIENT_TIMEOUT_SECONDS)

    with ThreadPoolExecutor(2 * capacity) as pool:
        answers = list(pool.map(one, range(2 * capacity)))
    statuses = sorted(answer.status_code for answer in answers)
    assert set(statuses) == {200, 429} and statuses.count(200) >= capacity, statuses
    refused = [answer for answer in answers if answer.status_code == 429]
    assert all(int(answer.headers["retry-after"]) >= 1 for answer in refused)
    print(f"\noverload 2x ({2 * capacity} concurrent generations, capacity {capacity}): "
          f"{statuses.count(200)} x 200, {len(refused)} x 429 with Retry-After, 0 x 5xx")


# Every public route with its method; "{id}" stands for a path parameter the fuzzer fills.
ROUTES = [
    ("GET", "/models"), ("GET", "/models/{id}/info"), ("GET", "/models/{id}/health"),
    ("POST", "/models/{id}/predict"), ("POST", "/models/{id}/predict:stream"),
    ("POST", "/v1/deidentify"), ("DELETE", "/models/{id}/sessions/{id}"), ("GET", "/v1/audit/records"),
    ("POST", "/v1/audit:verify"), ("GET", "/health"), ("GET", "/metrics"),
]
MODEL_IDS = st.sampled_from([GENERATION, EMBEDDING, CHAT, ""])
# Path segments: any text, percent-encoded bytes (also invalid UTF-8), or a real model id.
SEGMENTS = st.one_of(MODEL_IDS, st.text(max_size=40),
                     st.binary(max_size=12).map(lambda raw: "".join(f"%{byte:02x}" for byte in raw)))
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=60),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
PREDICT_BODIES = st.fixed_dictionaries({}, optional={
    "inputs": JSON_VALUES, "parameters": st.dictionaries(
        st.sampled_from(["max_new_tokens", "temperature", "top_p", "top_k", "stop", "seed", "normalize",
                         "repetition_penalty", "system_prompt", "unknown"]), JSON_VALUES, max_size=4),
    "session_id": JSON_VALUES, "user_id": JSON_VALUES, "purpose": JSON_VALUES, "text": JSON_VALUES,
})
BODIES = st.one_of(PREDICT_BODIES.map(json.dumps), JSON_VALUES.map(json.dumps), st.binary(max_size=200))
QUERIES = st.dictionaries(st.sampled_from(["limit", "after_sequence", "request_id", "model_type", "x"]),
                          st.text(max_size=20), max_size=3)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(route=st.sampled_from(ROUTES), segments=st.lists(SEGMENTS, min_size=2, max_size=2), body=BODIES,
       query=QUERIES, with_key=st.booleans())
def test_malformed_input_on_every_route_never_answers_5xx(mesh, route, segments, body, query, with_key):
    method, template = route
    path = template.replace("{id}", segments[0], 1).replace("{id}", segments[1], 1)
    headers = {"content-type": "application/json", **(mesh.auth() if with_key else {})}
    with httpx.Client(base_url=mesh.ports.base_url, timeout=CLIENT_TIMEOUT_SECONDS) as client:
        try:
            answer = client.request(method, path, params=query, content=body if method != "GET" else None,
                                    headers=headers)
        except httpx.InvalidURL:
            return  # the client library itself refuses to send such a URL
    assert answer.status_code < 500, (method, path, answer.status_code, answer.text[:200])
    assert "Quentin" not in answer.text


def generation_load(mesh: LocalMesh) -> int:
    """Sequences the generation worker decodes or holds in its queue, from the mesh's /metrics."""
    text = httpx.get(f"{mesh.ports.base_url}/metrics", timeout=10).text
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(("medai_num_requests_running{", "medai_num_requests_waiting{"))
                   and f'model_id="{GENERATION}"' in line))


def test_sigterm_during_streams_lets_them_all_finish_then_stops_everything(mesh):
    """Runs last: it stops the mesh."""
    results: dict[int, tuple[int, dict]] = {}

    def stream(number: int) -> None:
        body = {"inputs": f"Describe anemia, patient {number}.", "parameters": {"max_new_tokens": STREAM_TOKENS,
                                                                                  "temperature": 0}}
        with httpx.stream("POST", f"{mesh.ports.base_url}/models/{GENERATION}/predict:stream", json=body,
                          headers=mesh.auth(), timeout=180) as response:
            events = list(sse_events(response))
        results[number] = (response.status_code, events[-1] if events else {})

    streams = [threading.Thread(target=stream, args=(number,)) for number in range(4)]
    for thread in streams:
        thread.start()
    wait_until(lambda: generation_load(mesh) == 4, 30, "all four streams at the worker (two decoding, two queued)")
    signalled = time.monotonic()
    mesh.process.send_signal(signal.SIGTERM)
    with httpx.Client(base_url=mesh.ports.base_url, headers=mesh.auth(), timeout=10) as client:
        wait_until(lambda: client.get("/ready").status_code == 503, 10, "Envoy to fail its readiness")
        during = wait_until(lambda: (answer := embed(client)).status_code != 200 and answer, 15,
                            "new calls to be refused")
    for thread in streams:
        thread.join(180)
    finished = time.monotonic() - signalled
    mesh.process.wait(180)
    stopped = time.monotonic() - signalled
    assert during.status_code == 503
    endings = {number: (status, last.get("finish_reason"), last.get("error")) for number, (status, last) in
               results.items()}
    assert all(status == 200 and reason in ("length", "stop") and error is None
               for status, reason, error in endings.values()) and len(endings) == 4, endings
    assert all(last["usage"]["generated_tokens"] > 0 for _, last in results.values())
    assert wait_for_no_processes(mesh.marker, 30) == []
    print(f"\nSIGTERM during 4 streams: all 4 finished ({finished:.1f} s after the signal), new calls got 503 "
          f"while draining, make run exited {stopped:.1f} s after the signal, no process left")
