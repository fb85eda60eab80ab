"""Operators can see the mesh: one `make run` mesh (real Envoy, every service, the shipped models) with
log files, the monitor's webhooks pointed at a real local receiver, and a real Prometheus scraping it.

- /v1/alerts and /v1/system through Envoy, for admin and auditor keys only;
- a canary PHI sent through every route is in no log file (serving, error, access, audit, rotated ones too);
- every log file is JSON lines, and rotates;
- every PromQL expression of every dashboard panel and every alert rule returns data from Prometheus'
  HTTP API after a little traffic (the names match what the services export), with a screenshot of
  Prometheus' graph page (headless Chromium) when Chromium is installed;
- a killed worker fires the monitor's worker_down alert (webhook received), and its restart resolves it.

Prometheus and Chromium are Debian's packages (`make prometheus-tools`); the tests that need them skip
without them.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from libs.observability import alerts, dashboards
from tests.support.local_mesh import LocalMesh, running_mesh
from tests.support.processes import service_pid
from tests.support.prometheus import (
    GRAFANA_VARIABLES,
    Prometheus,
    chromium_binary,
    local_config,
    prometheus_binary,
    running_prometheus,
    screenshot,
)
from tests.support.webhooks import Receiver, webhook_receiver

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
MEDAI = ROOT / ".venv" / "bin" / "medai"
GENERATION, EMBEDDING, CHAT = "smollm2-135m-instruct", "all-minilm-l6-v2", "smollm2-135m-chat"
# The canary: a made-up patient; none of these pieces may appear in any log file.
CANARY_NAME, CANARY_SSN, CANARY_PHONE = "Zebulon Quixwright", "078-05-1120", "617-555-0199"
CANARY = f"Patient {CANARY_NAME}, SSN {CANARY_SSN}, phone {CANARY_PHONE}, reports chest pain."
CANARY_PIECES = ("Quixwright", CANARY_SSN, CANARY_PHONE, "078051120", "6175550199")
LOG_MAX_BYTES, LOG_BACKUPS = 8192, 300
LOG_FILES = ("serving.log", "error.log", "access.log", "audit.log")
# Where a copy of the Prometheus graph screenshot goes (the closing note's artifact), if set.
SCREENSHOT_COPY = os.environ.get("MEDAI_SCREENSHOT_PATH", "")


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as running:
        yield running


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def mesh(tmp_path_factory, data_dir, receiver) -> Iterator[LocalMesh]:
    state = tmp_path_factory.mktemp("state")
    env = {
        "APP_LOG_DIR": str(state / "logs"), "APP_LOG_MAX_BYTES": str(LOG_MAX_BYTES),
        "APP_LOG_BACKUP_COUNT": str(LOG_BACKUPS),
        "MONITOR_SYSTEM_INTERVAL_SECONDS": "1", "MONITOR_ALERT_FOR_SECONDS": json.dumps({"worker_down": 1}),
        "MONITOR_ALERT_WEBHOOKS": json.dumps([receiver.url]), "MONITOR_ALERT_WEBHOOK_BACKOFF_SECONDS": "0.2",
        "SERVING_DEFAULT_MAX_NEW_TOKENS": "8",
    }
    try:
        with running_mesh(state, data_dir, env) as running:
            running.log_dir = state / "logs"
            yield running
    except RuntimeError as error:
        pytest.fail(str(error))


@pytest.fixture(scope="module")
def prometheus(mesh, tmp_path_factory) -> Iterator[Prometheus]:
    """Started with the mesh, so that it has scraped the traffic of the tests before its own."""
    if prometheus_binary() is None:
        yield None
        return
    config = local_config(mesh.ports, tls_dir=mesh.state_dir / "tls" if mesh.tls else None)
    with running_prometheus(config, tmp_path_factory.mktemp("prometheus")) as running:
        yield running


@pytest.fixture(scope="module")
def http(mesh, prometheus) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=mesh.ports.base_url, headers=mesh.auth(), timeout=120) as client:
        yield client


def new_key(mesh: LocalMesh, data_dir: Path, role: str, *options: str) -> str:
    env = {**os.environ, "APP_DATA_DIR": str(data_dir), "APP_STATE_DIR": str(mesh.state_dir)}
    created = subprocess.run([str(MEDAI), "keys", "create", "--role", role, "--name", f"observe {role}", *options],
                             env=env, capture_output=True, text=True, timeout=60)
    assert created.returncode == 0, created.stderr
    return created.stdout.strip().splitlines()[-1]


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def wait_until(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


# -- /v1/alerts and /v1/system through Envoy --------------------------------------------------------

@pytest.mark.parametrize(("role", "status"), [("admin", 200), ("auditor", 200), ("clinician", 403),
                                              ("researcher", 403), ("service", 403)])
def test_alerts_and_system_through_envoy_for_admin_and_auditor_keys(mesh, data_dir, http, role, status):
    key = mesh.key if role == "admin" else new_key(mesh, data_dir, role)
    alerts_response = http.get("/v1/alerts", headers=bearer(key))
    system_response = http.get("/v1/system", headers=bearer(key))
    assert (alerts_response.status_code, system_response.status_code) == (status, status)
    if status != 200:
        return
    body = alerts_response.json()
    assert set(body) <= {"alerts", "history"}
    for alert in body.get("alerts", []) + body.get("history", []):
        assert alert["rule"] and alert["state"] in ("pending", "firing", "resolved") and alert["since"]
    system = system_response.json()
    assert 0 <= float(system["cpuPercent"] if "cpuPercent" in system else system["cpu_percent"]) <= 100
    memory_total = int(system.get("memoryTotalBytes", system.get("memory_total_bytes", 0)))
    assert memory_total > 0 and 0 < float(system.get("memoryPercent", system.get("memory_percent", 0))) <= 100
    assert "collectedAt" in system or "collected_at" in system


def test_alerts_and_system_need_a_key(http, mesh):
    for path in ("/v1/alerts", "/v1/system"):
        assert httpx.get(f"{mesh.ports.base_url}{path}").status_code == 401


# -- a canary PHI through every route ----------------------------------------------------------------

def every_route_with_the_canary(http: httpx.Client, mesh: LocalMesh) -> list[int]:
    """The canary in every body field and query string of every public route; each call's status."""
    query = "?" + urllib.parse.urlencode({"note": CANARY})
    unary = {"inputs": CANARY, "parameters": {"max_new_tokens": 4, "temperature": 0}, "user_id": "u1"}
    calls = [
        ("POST", f"/models/{GENERATION}/predict", unary),
        ("POST", f"/models/{GENERATION}/predict:stream", unary),
        ("POST", f"/models/{EMBEDDING}/predict", {"inputs": [CANARY, "chest pain"]}),
        ("POST", f"/models/{CHAT}/predict", {"inputs": CANARY, "session_id": "canary-session",
                                             "parameters": {"max_new_tokens": 4}}),
        ("POST", f"/models/{CHAT}/predict:stream", {"inputs": CANARY, "session_id": "canary-session",
                                                    "parameters": {"max_new_tokens": 4}}),
        ("DELETE", f"/models/{CHAT}/sessions/canary-session", None),
        ("POST", "/v1/deidentify", {"text": CANARY}),
        ("POST", "/v1/chat/completions", {"model": GENERATION, "max_tokens": 4,
                                          "messages": [{"role": "user", "content": CANARY}]}),
        ("POST", "/v1/chat/completions", {"model": GENERATION, "max_tokens": 4, "stream": True,
                                          "messages": [{"role": "user", "content": CANARY}]}),
        ("POST", "/v1/completions", {"model": GENERATION, "prompt": CANARY, "max_tokens": 4}),
        ("POST", "/v1/embeddings", {"model": EMBEDDING, "input": [CANARY]}),
        # Refused and invalid calls must not log it either.
        ("POST", f"/models/{GENERATION}/predict", {"inputs": CANARY, "parameters": {"temperature": 9}}),
        ("POST", f"/models/{GENERATION}/predict", {"inputs": CANARY, "user_id": CANARY}),
        ("POST", "/models/no-such-model/predict", {"inputs": CANARY}),
        ("POST", "/v1/deidentify", {"text": CANARY, "unknown_field": CANARY}),
        ("POST", "/v1/audit:verify", {}),
        ("GET", "/models" + query, None),  # unknown query parameters are refused (400); never logged
        ("GET", "/v1/audit/records", None),
        ("GET", "/models", None),
        ("GET", f"/models/{GENERATION}/info", None),
        ("GET", f"/models/{GENERATION}/health", None),
        ("GET", "/v1/models", None),
        ("GET", f"/v1/models/{GENERATION}", None),
        ("GET", "/health", None),
        ("GET", "/metrics", None),
        ("GET", "/v1/alerts", None),
        ("GET", "/v1/system", None),
    ]
    # Routes without a body carry it in a header.
    statuses = [http.request(method, path, json=body, headers={"x-note": CANARY}).status_code
                for method, path, body in calls]
    unauthenticated = httpx.post(f"{mesh.ports.base_url}/models/{GENERATION}/predict", json=unary)
    return [*statuses, unauthenticated.status_code]


def log_texts(log_dir: Path) -> dict[str, str]:
    return {path.name: path.read_text(errors="replace") for path in sorted(log_dir.iterdir()) if path.is_file()}


def test_a_canary_phi_sent_through_every_route_is_in_no_log_file(http, mesh):
    statuses = every_route_with_the_canary(http, mesh)
    assert statuses.count(200) >= 22 and 401 in statuses and 400 in statuses and 404 in statuses, str(statuses)
    assert all(status < 500 for status in statuses), str(statuses)
    # Everything written: the last calls' access lines (flushed every second) and audit records.
    wait_until(lambda: '"/v1/system"' in "".join(
        text for name, text in log_texts(mesh.log_dir).items() if name.startswith("access.log")), 30,
        "the access log of the last call")
    wait_until(lambda: '"action": "deidentify"' in "".join(
        text for name, text in log_texts(mesh.log_dir).items() if name.startswith("audit.log")), 30,
        "the audit line of the de-identification")
    texts = log_texts(mesh.log_dir)
    assert {name.split(".log")[0] + ".log" for name in texts} >= set(LOG_FILES)
    for name, text in texts.items():
        for piece in CANARY_PIECES:
            assert piece not in text, f"{piece!r} in {name}"


# -- log files ---------------------------------------------------------------------------------------

def test_every_log_file_is_json_lines_and_rotates_with_retention(http, mesh):
    for _ in range(30):  # enough access and audit lines to rotate those files too
        assert http.post(f"/models/{EMBEDDING}/predict", json={"inputs": "chest pain"}).status_code == 200
    wait_until(lambda: all((mesh.log_dir / f"{name}.1").exists() for name in ("serving.log", "access.log",
                                                                              "audit.log")), 30, "rotations")
    # Envoy reopened access.log after the launcher renamed it: a later call lands in the new file.
    wait_until(lambda: (http.get("/health").status_code == 200 and (mesh.log_dir / "access.log").exists()
                        and '"/health"' in (mesh.log_dir / "access.log").read_text()), 30, "a reopened access.log")
    texts = log_texts(mesh.log_dir)
    for base in LOG_FILES:
        assert any(text.strip() for name, text in texts.items() if name.startswith(base)), base
    for name, text in texts.items():
        lines = [line for line in text.splitlines() if line.strip()]  # (a file just rotated may be empty)
        for line in lines:
            record = json.loads(line)
            assert isinstance(record, dict), f"{name}: {line[:200]}"
    for base in LOG_FILES:
        files = [name for name in texts if name == base or name.startswith(base + ".")]
        indices = [int(name.rsplit(".", 1)[1]) for name in files if name != base]
        assert len(files) <= LOG_BACKUPS + 1 and max(indices, default=0) < LOG_BACKUPS, base
        # Python's handler rotates before a write would pass the size; the launcher (access.log) within a
        # second after Envoy's writes passed it.
        slack = 64 * 1024 if base == "access.log" else 4096
        assert all(len(texts[name].encode()) <= LOG_MAX_BYTES + slack for name in files), base
    audit = [json.loads(line) for name, text in texts.items() if name.startswith("audit.log")
             for line in text.splitlines()]
    assert {"request_id", "action", "outcome", "phi_entity_counts", "input_digest"} <= audit[0].keys()
    assert all(record["log"] == "audit" and record["destination"] in ("database", "spool") for record in audit)
    errors = [json.loads(line) for name, text in texts.items() if name.startswith("error.log")
              for line in text.splitlines()]
    assert all(record["level"].upper() in ("WARNING", "ERROR", "CRITICAL") for record in errors)
    access = [json.loads(line) for name, text in texts.items() if name.startswith("access.log")
              for line in text.splitlines()]
    assert all({"method", "path", "status", "duration_ms"} <= record.keys() for record in access)


# -- a real Prometheus -------------------------------------------------------------------------------

def traffic(http: httpx.Client, mesh: LocalMesh, data_dir: Path) -> None:
    """A little of everything the dashboards show: generation, streams (one cut short), embeddings (one
    answered from the cache), conversation, PHI, client errors and a 429."""
    assert http.post(f"/models/{GENERATION}/predict", json={"inputs": "Name a symptom of anemia.",
                                                            "parameters": {"max_new_tokens": 8}}).status_code == 200
    with http.stream("POST", f"/models/{GENERATION}/predict:stream",
                     json={"inputs": "Describe anemia.", "parameters": {"max_new_tokens": 64}}) as stream:
        next(stream.iter_lines())  # then hang up: the sequence is cancelled
    for _ in range(2):
        assert http.post(f"/models/{EMBEDDING}/predict", json={"inputs": ["same text"]}).status_code == 200
    assert http.post(f"/models/{CHAT}/predict", json={"inputs": "Hello.", "session_id": ""}).status_code == 200
    assert http.post("/v1/deidentify", json={"text": "Jane Roe, phone 617-555-0142."}).status_code == 200
    assert http.post(f"/models/{GENERATION}/predict", json={"inputs": "x", "parameters": {"temperature": 9}}
                     ).status_code == 400
    limited = bearer(new_key(mesh, data_dir, "service", "--rpm", "1"))
    codes = [http.get("/models", headers=limited).status_code for _ in range(3)]
    assert 429 in codes


def dashboard_queries() -> list[tuple[str, str, bool]]:
    """(where, expr, needs a GPU) of every target of every dashboard file."""
    found = []
    for dashboard in dashboards.DASHBOARDS:
        document = json.loads((ROOT / f"libs/observability/grafana/dashboards/{dashboard.uid}.json").read_text())
        needs_gpu = {panel.title for panel in dashboard.panels if panel.needs_gpu}
        for panel in document["panels"]:
            for target in panel["targets"]:
                found.append((f"{dashboard.uid} / {panel['title']} / {target['refId']}", target["expr"],
                              panel["title"] in needs_gpu))
    return found


def rule_queries() -> list[tuple[str, str, bool]]:
    return [(f"rule {rule.name}", rule.value, "medai_system_gpu" in rule.value) for rule in alerts.RULES]


def with_grafana_variables(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def test_real_prometheus_evaluates_every_panel_and_rule_with_data(http, mesh, data_dir, prometheus, tmp_path):
    if prometheus is None:
        pytest.skip("prometheus is not installed (make prometheus-tools, or apt-get install prometheus)")
    wait_until(lambda: set(prometheus.targets_up().values()) == {"up"}, 60, "every target up")
    traffic(http, mesh, data_dir)
    has_gpu = bool(http.get("/v1/system").json().get("gpus"))
    queries = dashboard_queries() + rule_queries()
    missing = {where: with_grafana_variables(expr) for where, expr, needs_gpu in queries
               if not needs_gpu or has_gpu}
    evaluated = len(missing)

    def still_missing() -> bool:
        for where, expr in list(missing.items()):
            if prometheus.query(expr):
                del missing[where]
        return not missing

    try:
        wait_until(still_missing, 90, "data for every expression")
    except AssertionError:
        pytest.fail(f"no data for {len(missing)} of {evaluated} expressions: {json.dumps(missing, indent=1)}")
    skipped = len(queries) - evaluated
    print(f"\n{evaluated} PromQL expressions evaluated, all with data ({skipped} GPU-only skipped: no GPU)")

    # Every rule loads and evaluates (alert rules report health "ok").
    loaded = wait_until(lambda: [r for r in prometheus.rules() if r.get("lastEvaluation", "").startswith("20")],
                        30, "rules evaluated")
    assert {rule["name"] for rule in loaded} == {rule.name for rule in alerts.RULES}
    assert {rule["health"] for rule in loaded} == {"ok"}

    if chromium_binary() is None:
        return
    expr = with_grafana_variables(dashboards.OVERVIEW.panels[0].queries[0].expr)  # request rate by route
    path = screenshot(prometheus.graph_url(expr), tmp_path / "prometheus-graph.png")
    png = path.read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 20_000
    if SCREENSHOT_COPY:
        shutil.copyfile(path, SCREENSHOT_COPY)


# -- the monitor's own alerting: a worker down, a webhook received -------------------------------------

def pid_of(mesh: LocalMesh, service: str) -> int:
    return service_pid(mesh.marker, service)


def test_a_killed_worker_fires_worker_down_to_the_webhook_and_its_restart_resolves_it(http, mesh, receiver):
    def embedding_worker_down(bodies: list[dict]) -> list[tuple[str, str]]:
        return [(body["status"], body["alerts"][0]["labels"].get("instance", "")) for body in bodies
                if body["alerts"][0]["labels"]["alertname"] == "worker_down"
                and body["alerts"][0]["labels"].get("instance") == "embedding"]

    before = len(receiver.bodies())
    os.kill(pid_of(mesh, "embedding"), signal.SIGKILL)
    receiver.wait_for(lambda bodies: embedding_worker_down(bodies[before:])[:1] == [("firing", "embedding")], 60)
    firing = http.get("/v1/alerts").json().get("alerts", [])
    assert any(a["rule"] == "worker_down" and a.get("instance") == "embedding" for a in firing), firing

    # supervisord restarts it; once SERVING again the alert resolves.
    receiver.wait_for(lambda bodies: embedding_worker_down(bodies[before:]) == [
        ("firing", "embedding"), ("resolved", "embedding")], 240)
    history = http.get("/v1/alerts").json()["history"]
    states = [a["state"] for a in history if a["rule"] == "worker_down" and a.get("instance") == "embedding"]
    assert states[:2] == ["resolved", "firing"]
    body = receiver.bodies()[before:]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT.*Z", b["alerts"][0]["startsAt"]) for b in body)
